/**
 * The imsearch public API from TypeScript (browsers, Node 18+, React Native).
 *
 * The request and response types are generated from the API's OpenAPI description
 * (`src/schema.d.ts`, by openapi-typescript: `npm run generate`); the calls go through
 * openapi-fetch, typed by those paths. This file only adds what every app writes by hand
 * otherwise: multipart bodies for uploads, the API key header, and errors as exceptions that
 * carry the API's stable error code (docs/API.md).
 */
import createClient from "openapi-fetch";
/** An error answer: HTTP status, the stable `code` (e.g. `image_decode_error`) and a message. */
export class ImsearchError extends Error {
    constructor(status, code, message) {
        super(message);
        this.status = status;
        this.code = code;
        this.name = "ImsearchError";
    }
}
function multipart(fields) {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) {
        if (value instanceof Blob) {
            form.append(name, value, value.name ?? name);
        }
        else {
            form.append(name, value);
        }
    }
    return form;
}
function unwrap(data, error, response) {
    if (response.ok && data !== undefined) {
        return data;
    }
    const body = (error ?? {});
    const code = body.error?.code ?? "http_error";
    const message = body.error?.message ?? `${response.status} ${response.statusText}`;
    throw new ImsearchError(response.status, code, message);
}
export function createImsearchClient(options) {
    const baseUrl = options.baseUrl.replace(/\/+$/, "");
    const http = createClient({
        baseUrl,
        headers: options.apiKey ? { "X-API-Key": options.apiKey } : {},
        fetch: options.fetch,
    });
    // The generated types describe file parts as strings (OpenAPI's `format: binary`); the
    // body below is what is sent, a FormData built from Blobs.
    const form = (fields) => ({
        body: fields,
        bodySerializer: () => multipart(fields),
    });
    return {
        /** The typed openapi-fetch client, for anything this wrapper does not cover. */
        raw: http,
        /** Images of the collection that show what `image` shows, best first. */
        async search(image, params = {}) {
            const { data, error, response } = await http.POST("/v1/search", {
                params: { query: params },
                ...form({ image }),
            });
            // openapi-fetch widens the [xq, yq, xr, yr] tuples of `matches` to number[]
            return unwrap(data, error, response);
        },
        /** Add (or replace) an image under `id`; `created` is false if it was already there. */
        async addImage(id, image, metadata = {}) {
            const { data, error, response } = await http.POST("/v1/images", {
                ...form({ id, image, metadata: JSON.stringify(metadata) }),
            });
            return unwrap(data, error, response);
        },
        async getImage(id) {
            const { data, error, response } = await http.GET("/v1/images/{image_id}", {
                params: { path: { image_id: id } },
            });
            return unwrap(data, error, response);
        },
        async deleteImage(id) {
            const { data, error, response } = await http.DELETE("/v1/images/{image_id}", {
                params: { path: { image_id: id } },
            });
            return unwrap(data, error, response);
        },
        async stats() {
            const { data, error, response } = await http.GET("/v1/stats");
            return unwrap(data, error, response);
        },
        /** The URL of an image's thumbnail (a JPEG), for an `<img src>`. */
        thumbnailUrl(id) {
            return `${baseUrl}/v1/images/${id.split("/").map(encodeURIComponent).join("/")}/thumbnail`;
        },
    };
}
