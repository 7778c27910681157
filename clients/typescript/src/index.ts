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
import type { components, paths } from "./schema";

export type { components, paths };
export type SearchResponse = components["schemas"]["SearchResponse"];
export type SearchHit = components["schemas"]["SearchHit"];
export type AddResponse = components["schemas"]["AddResponse"];
export type ImageInfo = components["schemas"]["ImageInfo"];
export type DeleteResponse = components["schemas"]["DeleteResponse"];
export type Stats = components["schemas"]["Stats"];
export type ErrorBody = components["schemas"]["ErrorBody"];
/** k, rerank, m, min_inliers, nprobe, ef_search, k_factor, matches. */
export type SearchParams = NonNullable<paths["/v1/search"]["post"]["parameters"]["query"]>;

/** An error answer: HTTP status, the stable `code` (e.g. `image_decode_error`) and a message. */
export class ImsearchError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "ImsearchError";
  }
}

export interface ClientOptions {
  /** Where the gateway answers, e.g. `https://search.example.org`. */
  baseUrl: string;
  /** Sent as `X-API-Key`: needed to add and delete (and to search, if the operator says so). */
  apiKey?: string;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch;
}

/** A file part: a `File` from `<input type=file>`, or any `Blob`. */
export type Upload = Blob;

function multipart(fields: Record<string, string | Blob>): FormData {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value instanceof Blob) {
      form.append(name, value, (value as File).name ?? name);
    } else {
      form.append(name, value);
    }
  }
  return form;
}

function unwrap<T>(data: T | undefined, error: unknown, response: Response): T {
  if (response.ok && data !== undefined) {
    return data;
  }
  const body = (error ?? {}) as Partial<ErrorBody>;
  const code = body.error?.code ?? "http_error";
  const message = body.error?.message ?? `${response.status} ${response.statusText}`;
  throw new ImsearchError(response.status, code, message);
}

export function createImsearchClient(options: ClientOptions) {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const http = createClient<paths>({
    baseUrl,
    headers: options.apiKey ? { "X-API-Key": options.apiKey } : {},
    fetch: options.fetch,
  });
  // The generated types describe file parts as strings (OpenAPI's `format: binary`); the
  // body below is what is sent, a FormData built from Blobs.
  const form = (fields: Record<string, string | Blob>) => ({
    body: fields as never,
    bodySerializer: () => multipart(fields),
  });

  return {
    /** The typed openapi-fetch client, for anything this wrapper does not cover. */
    raw: http,

    /** Images of the collection that show what `image` shows, best first. */
    async search(image: Upload, params: SearchParams = {}): Promise<SearchResponse> {
      const { data, error, response } = await http.POST("/v1/search", {
        params: { query: params },
        ...form({ image }),
      });
      // openapi-fetch widens the [xq, yq, xr, yr] tuples of `matches` to number[]
      return unwrap(data, error, response) as SearchResponse;
    },

    /** Add (or replace) an image under `id`; `created` is false if it was already there. */
    async addImage(
      id: string,
      image: Upload,
      metadata: Record<string, unknown> = {},
    ): Promise<AddResponse> {
      const { data, error, response } = await http.POST("/v1/images", {
        ...form({ id, image, metadata: JSON.stringify(metadata) }),
      });
      return unwrap(data, error, response);
    },

    async getImage(id: string): Promise<ImageInfo> {
      const { data, error, response } = await http.GET("/v1/images/{image_id}", {
        params: { path: { image_id: id } },
      });
      return unwrap(data, error, response);
    },

    async deleteImage(id: string): Promise<DeleteResponse> {
      const { data, error, response } = await http.DELETE("/v1/images/{image_id}", {
        params: { path: { image_id: id } },
      });
      return unwrap(data, error, response);
    },

    async stats(): Promise<Stats> {
      const { data, error, response } = await http.GET("/v1/stats");
      return unwrap(data, error, response);
    },

    /** The URL of an image's thumbnail (a JPEG), for an `<img src>`. */
    thumbnailUrl(id: string): string {
      return `${baseUrl}/v1/images/${id.split("/").map(encodeURIComponent).join("/")}/thumbnail`;
    },
  };
}

export type ImsearchClient = ReturnType<typeof createImsearchClient>;
