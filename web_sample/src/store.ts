/**
 * The interaction store: this browser's likes and user vector, encrypted at rest in IndexedDB.
 *
 * The plaintext is the same JSON document the Android and iOS samples seal:
 * `{"version": 2, "model_version": "...", "user": [d floats], "interactions": [{"item_id", "label", "time_ms"}]}`.
 * The history is kept by the app's item ids (the manifest's item map), never by model rows, so it outlives a
 * catalog update: each bundle maps it onto its own rows and leaves out the items it no longer holds (which
 * stay stored). A log of the earlier format (version 1, model rows) is converted to ids only with the bundle
 * whose rows it holds ({@link upgradeLog}).
 * It is sealed with AES-256-GCM (WebCrypto): a fresh random 96-bit nonce per write, and associated data that
 * binds the blob to this store and format. The key is generated inside WebCrypto as non-extractable and kept
 * in IndexedDB as a `CryptoKey` (structured clone keeps it non-extractable), so page script can use it but
 * nothing can read its bytes. IndexedDB only ever holds `{version, iv, data}`: ciphertext, never the history.
 * Nothing here is sent anywhere.
 */

export const DB_NAME = 'privrec';
export const STORE_NAME = 'vault';
export const KEY_ID = 'key';
export const LOG_ID = 'interactions';
const ASSOCIATED_DATA = new TextEncoder().encode('privrec-web interaction store v1');

export interface Interaction {
  /** the app's own item id (the manifest's item map), never a model row */
  item_id: string;
  /** 1 for a like */
  label: number;
  time_ms: number;
}

export interface InteractionLog {
  version: 2;
  model_version: string;
  user: number[];
  interactions: Interaction[];
}

/** The bundle whose rows a version-1 log holds: its model version and `ids[row]` (its item map). */
export interface RowsBundle {
  model_version: string;
  ids: readonly string[];
}

/** What IndexedDB holds under `interactions`: ciphertext only. */
export interface SealedRecord {
  version: 1;
  iv: Uint8Array;
  data: ArrayBuffer;
}

/** A stored log that cannot be opened (altered, wrong key, or not this format). */
export class StoreError extends Error {
  constructor(detail: string) {
    super(`interaction store: ${detail}`);
    this.name = 'StoreError';
  }
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDb(name: string): Promise<IDBDatabase> {
  const req = indexedDB.open(name, 1);
  req.onupgradeneeded = () => {
    req.result.createObjectStore(STORE_NAME);
  };
  return request(req);
}

const show = (v: unknown): string => JSON.stringify(v) ?? String(v);

/**
 * A decrypted document as a version-2 log (item ids). A version-1 log (model rows) is converted through
 * `rows`, which must be the bundle it was written with (same `model_version`; rows outside its catalog are
 * dropped); without it the log is refused, since rows of another catalog name other items. Throws `StoreError`
 * naming the first problem: an unknown version, an `item_id` that is not a non-empty string, a bad label.
 */
export function upgradeLog(value: unknown, rows?: RowsBundle): InteractionLog {
  const log = value as Record<string, unknown>;
  if (typeof log !== 'object' || log === null || Array.isArray(log)) throw new StoreError(`the decrypted document is not an object. Found ${show(value)}.`);
  if (log.version !== 1 && log.version !== 2) throw new StoreError(`\`version\` must be 1 or 2. Found ${show(log.version)}.`);
  if (typeof log.model_version !== 'string') throw new StoreError(`\`model_version\` must be a string. Found ${show(log.model_version)}.`);
  if (!Array.isArray(log.user) || !log.user.every((x) => Number.isFinite(x))) throw new StoreError('`user` must be a list of finite numbers.');
  if (!Array.isArray(log.interactions)) throw new StoreError(`\`interactions\` must be a list. Found ${show(log.interactions)}.`);
  if (log.version === 1 && (rows === undefined || rows.model_version !== log.model_version)) {
    throw new StoreError(`a version-1 log holds rows of model ${show(log.model_version)}: it converts to item ids only with that bundle's item map.`);
  }
  const out: Interaction[] = [];
  log.interactions.forEach((raw: unknown, pos: number) => {
    const i = raw as Record<string, unknown>;
    if (typeof i !== 'object' || i === null) throw new StoreError(`\`interactions[${pos}]\` must be an object. Found ${show(raw)}.`);
    if (typeof i.label !== 'number' || !Number.isFinite(i.label) || i.label < 0) {
      throw new StoreError(`\`interactions[${pos}].label\` must be a finite number >= 0. Found ${show(i.label)}.`);
    }
    if (typeof i.time_ms !== 'number' || !Number.isFinite(i.time_ms)) throw new StoreError(`\`interactions[${pos}].time_ms\` must be a number. Found ${show(i.time_ms)}.`);
    if (log.version === 1) {
      if (typeof i.item !== 'number' || !Number.isInteger(i.item) || i.item < 0) {
        throw new StoreError(`\`interactions[${pos}].item\` must be a row (an integer >= 0). Found ${show(i.item)}.`);
      }
      const ids = (rows as RowsBundle).ids;
      if (i.item < ids.length) out.push({ item_id: ids[i.item], label: i.label, time_ms: i.time_ms });
    } else {
      if (typeof i.item_id !== 'string' || i.item_id === '') {
        throw new StoreError(`\`interactions[${pos}].item_id\` must be a non-empty item id string. Found ${show(i.item_id)}.`);
      }
      out.push({ item_id: i.item_id, label: i.label, time_ms: i.time_ms });
    }
  });
  return { version: 2, model_version: log.model_version, user: log.user as number[], interactions: out };
}

function checkLog(value: unknown): InteractionLog {
  return upgradeLog(value);
}

export class InteractionStore {
  private readonly db: IDBDatabase;
  private key: CryptoKey | null;

  private constructor(db: IDBDatabase, key: CryptoKey | null) {
    this.db = db;
    this.key = key;
  }

  /** Open (or create) the store in IndexedDB database `name`. */
  static async open(name: string = DB_NAME): Promise<InteractionStore> {
    const db = await openDb(name);
    const key = (await request(db.transaction(STORE_NAME).objectStore(STORE_NAME).get(KEY_ID))) as CryptoKey | undefined;
    return new InteractionStore(db, key ?? null);
  }

  private async getKey(): Promise<CryptoKey> {
    if (this.key) return this.key;
    const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
    const tx = this.db.transaction(STORE_NAME, 'readwrite');
    tx.objectStore(STORE_NAME).put(key, KEY_ID);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
    this.key = key;
    return key;
  }

  /**
   * The stored log, or null when nothing is stored. Throws `StoreError` when it cannot be decrypted or is not
   * a log; a version-1 log (model rows) is converted with `rows`, the bundle it was written with ({@link upgradeLog}).
   */
  async read(rows?: RowsBundle): Promise<InteractionLog | null> {
    const sealed = (await request(this.db.transaction(STORE_NAME).objectStore(STORE_NAME).get(LOG_ID))) as SealedRecord | undefined;
    if (sealed === undefined) return null;
    if (!this.key) throw new StoreError('a sealed log exists but its key is gone.');
    if (sealed.version !== 1 || !(sealed.iv instanceof Uint8Array) || sealed.iv.length !== 12) {
      throw new StoreError('the sealed record is not version 1 with a 12-byte nonce.');
    }
    let plain: ArrayBuffer;
    try {
      plain = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: sealed.iv as Uint8Array<ArrayBuffer>, additionalData: ASSOCIATED_DATA }, this.key, sealed.data,
      );
    } catch {
      throw new StoreError('decryption failed: the record was altered or sealed with another key.');
    }
    return upgradeLog(JSON.parse(new TextDecoder().decode(plain)), rows);
  }

  /** Seal `log` with a fresh nonce and replace the stored record. */
  async write(log: InteractionLog): Promise<void> {
    checkLog(log);
    const key = await this.getKey();
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const data = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: ASSOCIATED_DATA }, key, new TextEncoder().encode(JSON.stringify(log)),
    );
    const record: SealedRecord = { version: 1, iv, data };
    const tx = this.db.transaction(STORE_NAME, 'readwrite');
    tx.objectStore(STORE_NAME).put(record, LOG_ID);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }

  /** "Forget my likes": delete the sealed log and the key (the next write makes a new key). */
  async erase(): Promise<void> {
    const tx = this.db.transaction(STORE_NAME, 'readwrite');
    tx.objectStore(STORE_NAME).delete(LOG_ID);
    tx.objectStore(STORE_NAME).delete(KEY_ID);
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
    this.key = null;
  }
}
