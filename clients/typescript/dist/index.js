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
    const collection = options.collection ?? "default";
    // "default" is also served without the prefix; other collections under it.
    const named = collection !== "default";
    const inPath = { collection };
    const imagePath = (id) => `${baseUrl}${named ? `/v1/collections/${encodeURIComponent(collection)}` : "/v1"}/images/` +
        id.split("/").map(encodeURIComponent).join("/");
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
        /** The collection this client works on. */
        collection,
        /** The same client, working on another collection. */
        inCollection(name) {
            return createImsearchClient({ ...options, collection: name });
        },
        /** Images of the collection that show what `image` shows, best first; with
         * `params.filter`, only images whose metadata satisfy it. */
        async search(image, params = {}) {
            const { filter, ...rest } = params;
            const query = {
                ...rest,
                ...(filter == null ? {} : { filter: typeof filter === "string" ? filter : JSON.stringify(filter) }),
            };
            const { data, error, response } = named
                ? await http.POST("/v1/collections/{collection}/search", {
                    params: { query, path: inPath },
                    ...form({ image }),
                })
                : await http.POST("/v1/search", { params: { query }, ...form({ image }) });
            // openapi-fetch widens the [xq, yq, xr, yr] tuples of `matches` to number[]
            return unwrap(data, error, response);
        },
        /** Add (or replace) an image under `id`; `created` is false if it was already there. */
        async addImage(id, image, metadata = {}) {
            const body = form({ id, image, metadata: JSON.stringify(metadata) });
            const { data, error, response } = named
                ? await http.POST("/v1/collections/{collection}/images", {
                    params: { path: inPath },
                    ...body,
                })
                : await http.POST("/v1/images", body);
            return unwrap(data, error, response);
        },
        async getImage(id) {
            const { data, error, response } = named
                ? await http.GET("/v1/collections/{collection}/images/{image_id}", {
                    params: { path: { ...inPath, image_id: id } },
                })
                : await http.GET("/v1/images/{image_id}", { params: { path: { image_id: id } } });
            return unwrap(data, error, response);
        },
        async deleteImage(id) {
            const { data, error, response } = named
                ? await http.DELETE("/v1/collections/{collection}/images/{image_id}", {
                    params: { path: { ...inPath, image_id: id } },
                })
                : await http.DELETE("/v1/images/{image_id}", { params: { path: { image_id: id } } });
            return unwrap(data, error, response);
        },
        async stats() {
            const { data, error, response } = named
                ? await http.GET("/v1/collections/{collection}/stats", { params: { path: inPath } })
                : await http.GET("/v1/stats");
            return unwrap(data, error, response);
        },
        /** The URL of an image's thumbnail (a JPEG), for an `<img src>`. */
        thumbnailUrl(id) {
            return `${imagePath(id)}/thumbnail`;
        },
        /** The deployment's collections (a key limited to some sees only those). */
        async listCollections() {
            const { data, error, response } = await http.GET("/v1/collections");
            return unwrap(data, error, response).collections;
        },
        /** Create a collection (`indexSpec`: e.g. `hnsw`; default: the deployment's). */
        async createCollection(name, indexSpec) {
            const { data, error, response } = await http.POST("/v1/collections", {
                body: { name, index_spec: indexSpec ?? null },
            });
            return unwrap(data, error, response);
        },
        /** Drop a collection: its images and files are deleted. */
        async dropCollection(name) {
            const { data, error, response } = await http.DELETE("/v1/collections/{collection}", {
                params: { path: { collection: name } },
            });
            return unwrap(data, error, response).dropped;
        },
    };
}
