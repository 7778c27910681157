// The first calls an app makes, under Node against a real server (run by the Python suite:
// tests/integration/test_clients.py). Uses the self-contained bundle, so it needs no
// node_modules. Prints one JSON object of what it saw; exits 1 on an unexpected answer.
//   node test/calls.mjs URL API_KEY COVER_JPEG PHOTO_JPEG
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { createImsearchClient, ImsearchError } from "../dist/imsearch.browser.js";

const [url, apiKey, cover, photo] = process.argv.slice(2);
const file = (path) => new Blob([readFileSync(path)], { type: "image/jpeg" });
const named = (path) => new File([readFileSync(path)], basename(path), { type: "image/jpeg" });

async function refused(call) {
  try {
    await call();
  } catch (error) {
    if (error instanceof ImsearchError) return { status: error.status, code: error.code };
    throw error;
  }
  throw new Error("the call was expected to fail");
}

const client = createImsearchClient({ baseUrl: url, apiKey });
const anonymous = createImsearchClient({ baseUrl: url });
const seen = {};
seen.before = (await client.stats()).count;
seen.added = await client.addImage("ts/cover", named(cover), { source: "node", year: 2024 });
seen.again = (await client.addImage("ts/cover", file(cover), { source: "node", year: 2024 })).created;
seen.info = await client.getImage("ts/cover");
const found = await client.search(named(photo), { k: 3 });
seen.top = found.results[0].id;
seen.verified = found.results[0].verified;
seen.thumbnail = (await fetch(client.thumbnailUrl("ts/cover"))).headers.get("content-type");
seen.no_key = await refused(() => anonymous.addImage("ts/other", file(cover)));
seen.garbage = await refused(() => client.search(new Blob([new Uint8Array([1, 2, 3])])));
seen.bad_k = await refused(() => client.search(file(photo), { k: 0 }));
seen.deleted = (await client.deleteImage("ts/cover")).deleted;
seen.gone = await refused(() => client.getImage("ts/cover"));
seen.after = (await client.stats()).count;
// A collection of its own: created, filled, searched with a filter, listed, dropped.
await client.createCollection("ts-shop");
const shop = client.inCollection("ts-shop");
await shop.addImage("cover", named(cover), { shelf: "top" });
seen.shop_top = (await shop.search(named(photo), { k: 3, filter: { shelf: "top" } })).results.map((h) => h.id);
seen.shop_none = (await shop.search(named(photo), { k: 3, filter: '{"shelf": "bottom"}' })).results.length;
seen.shop_default = (await client.search(named(photo), { k: 3 })).results.some((h) => h.id === "cover");
seen.collections = (await client.listCollections()).map((c) => c.name);
seen.dropped = await client.dropCollection("ts-shop");
seen.shop_gone = await refused(() => shop.stats());
console.log(JSON.stringify(seen));
