/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** base64 of the publisher's raw Ed25519 public key; the page then refuses bundles it did not sign */
  readonly VITE_PRIVREC_PUBLIC_KEY?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
