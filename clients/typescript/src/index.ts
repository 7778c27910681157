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
export type CollectionInfo = components["schemas"]["CollectionInfo"];
/** A metadata filter: JSON text or an object, e.g. `{ brand: "acme", year: { gte: 1990 } }`. */
export type Filter = string | Record<string, unknown>;
/** k, rerank, m, min_inliers, nprobe, ef_search, k_factor, matches, and a metadata filter. */
export type SearchParams = Omit<
  NonNullable<paths["/v1/search"]["post"]["parameters"]["query"]>,
  "filter"
> & { filter?: Filter | null };

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
  /** The collection every image and search call goes to (default: `default`). */
  collection?: string;
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
  const collection = options.collection ?? "default";
  // "default" is also served without the prefix; other collections under it.
  const named = collection !== "default";
  const inPath = { collection };
  const imagePath = (id: string) =>
    `${baseUrl}${named ? `/v1/collections/${encodeURIComponent(collection)}` : "/v1"}/images/` +
    id.split("/").map(encodeURIComponent).join("/");
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

    /** The collection this client works on. */
    collection,

    /** The same client, working on another collection. */
    inCollection(name: string): ImsearchClient {
      return createImsearchClient({ ...options, collection: name });
    },

    /** Images of the collection that show what `image` shows, best first; with
     * `params.filter`, only images whose metadata satisfy it. */
    async search(image: Upload, params: SearchParams = {}): Promise<SearchResponse> {
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
      return unwrap(data, error, response) as SearchResponse;
    },

    /** Add (or replace) an image under `id`; `created` is false if it was already there. */
    async addImage(
      id: string,
      image: Upload,
      metadata: Record<string, unknown> = {},
    ): Promise<AddResponse> {
      const body = form({ id, image, metadata: JSON.stringify(metadata) });
      const { data, error, response } = named
        ? await http.POST("/v1/collections/{collection}/images", {
            params: { path: inPath },
            ...body,
          })
        : await http.POST("/v1/images", body);
      return unwrap(data, error, response);
    },

    async getImage(id: string): Promise<ImageInfo> {
      const { data, error, response } = named
        ? await http.GET("/v1/collections/{collection}/images/{image_id}", {
            params: { path: { ...inPath, image_id: id } },
          })
        : await http.GET("/v1/images/{image_id}", { params: { path: { image_id: id } } });
      return unwrap(data, error, response);
    },

    async deleteImage(id: string): Promise<DeleteResponse> {
      const { data, error, response } = named
        ? await http.DELETE("/v1/collections/{collection}/images/{image_id}", {
            params: { path: { ...inPath, image_id: id } },
          })
        : await http.DELETE("/v1/images/{image_id}", { params: { path: { image_id: id } } });
      return unwrap(data, error, response);
    },

    async stats(): Promise<Stats> {
      const { data, error, response } = named
        ? await http.GET("/v1/collections/{collection}/stats", { params: { path: inPath } })
        : await http.GET("/v1/stats");
      return unwrap(data, error, response);
    },

    /** The URL of an image's thumbnail (a JPEG), for an `<img src>`. */
    thumbnailUrl(id: string): string {
      return `${imagePath(id)}/thumbnail`;
    },

    /** The deployment's collections (a key limited to some sees only those). */
    async listCollections(): Promise<CollectionInfo[]> {
      const { data, error, response } = await http.GET("/v1/collections");
      return unwrap(data, error, response).collections;
    },

    /** Create a collection (`indexSpec`: e.g. `hnsw`; default: the deployment's). */
    async createCollection(name: string, indexSpec?: string): Promise<CollectionInfo> {
      const { data, error, response } = await http.POST("/v1/collections", {
        body: { name, index_spec: indexSpec ?? null },
      });
      return unwrap(data, error, response);
    },

    /** Drop a collection: its images and files are deleted. */
    async dropCollection(name: string): Promise<boolean> {
      const { data, error, response } = await http.DELETE("/v1/collections/{collection}", {
        params: { path: { collection: name } },
      });
      return unwrap(data, error, response).dropped;
    },
  };
}

export interface ImsearchClient extends ReturnType<typeof createImsearchClient> {}
