/**
 * The interaction store: this browser's likes and user vector, encrypted at rest in IndexedDB.
 *
 * The plaintext is the same JSON document the Android and iOS samples seal:
 * `{"version": 1, "model_version": "...", "user": [d floats], "interactions": [{"item", "label", "time_ms"}]}`.
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
  /** model row */
  item: number;
  /** 1 for a like */
  label: number;
  time_ms: number;
}

export interface InteractionLog {
  version: 1;
  model_version: string;
  user: number[];
  interactions: Interaction[];
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

function checkLog(value: unknown): InteractionLog {
  const log = value as InteractionLog;
  const ok = typeof log === 'object' && log !== null && log.version === 1 && typeof log.model_version === 'string'
    && Array.isArray(log.user) && log.user.every((x) => Number.isFinite(x))
    && Array.isArray(log.interactions)
    && log.interactions.every((i) => Number.isInteger(i.item) && i.item >= 0 && Number.isFinite(i.label) && i.label >= 0 && Number.isFinite(i.time_ms));
  if (!ok) throw new StoreError('the decrypted document is not a version-1 interaction log.');
  return log;
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

  /** The stored log, or null when nothing is stored. Throws `StoreError` when it cannot be decrypted. */
  async read(): Promise<InteractionLog | null> {
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
    return checkLog(JSON.parse(new TextDecoder().decode(plain)));
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
