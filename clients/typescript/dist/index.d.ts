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
export type SearchParams = Omit<NonNullable<paths["/v1/search"]["post"]["parameters"]["query"]>, "filter"> & {
    filter?: Filter | null;
};
/** An error answer: HTTP status, the stable `code` (e.g. `image_decode_error`) and a message. */
export declare class ImsearchError extends Error {
    readonly status: number;
    readonly code: string;
    constructor(status: number, code: string, message: string);
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
export declare function createImsearchClient(options: ClientOptions): {
    /** The typed openapi-fetch client, for anything this wrapper does not cover. */
    raw: import("openapi-fetch").Client<paths, `${string}/${string}`>;
    /** The collection this client works on. */
    collection: string;
    /** The same client, working on another collection. */
    inCollection(name: string): ImsearchClient;
    /** Images of the collection that show what `image` shows, best first; with
     * `params.filter`, only images whose metadata satisfy it. */
    search(image: Upload, params?: SearchParams): Promise<SearchResponse>;
    /** Add (or replace) an image under `id`; `created` is false if it was already there. */
    addImage(id: string, image: Upload, metadata?: Record<string, unknown>): Promise<AddResponse>;
    getImage(id: string): Promise<ImageInfo>;
    deleteImage(id: string): Promise<DeleteResponse>;
    stats(): Promise<Stats>;
    /** The URL of an image's thumbnail (a JPEG), for an `<img src>`. */
    thumbnailUrl(id: string): string;
    /** The deployment's collections (a key limited to some sees only those). */
    listCollections(): Promise<CollectionInfo[]>;
    /** Create a collection (`indexSpec`: e.g. `hnsw`; default: the deployment's). */
    createCollection(name: string, indexSpec?: string): Promise<CollectionInfo>;
    /** Drop a collection: its images and files are deleted. */
    dropCollection(name: string): Promise<boolean>;
};
export interface ImsearchClient extends ReturnType<typeof createImsearchClient> {
}
