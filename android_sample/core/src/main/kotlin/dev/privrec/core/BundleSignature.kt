package dev.privrec.core

import java.io.File
import java.security.GeneralSecurityException
import java.security.KeyFactory
import java.security.NoSuchAlgorithmException
import java.security.PublicKey
import java.security.Signature
import java.security.spec.X509EncodedKeySpec
import java.util.Base64

/**
 * The publisher's Ed25519 public key, pinned by the app: the raw 32 bytes that `privrec keys generate` writes
 * in base64 on one line (`privrec_signing_key.pub`). Ship it in the app's code or resources; never download
 * it with the bundle it is meant to check.
 */
class BundlePublicKey private constructor(private val raw: ByteArray) {
    /** The first 16 hex digits of the sha256 of the raw key: the `key_id` that `manifest.sig` names. */
    val keyId: String = Sha256.hex(raw).substring(0, 16)

    /** The raw 32 bytes (a copy). */
    fun rawBytes(): ByteArray = raw.copyOf()

    /** The key for java.security: the raw key inside an X.509 SubjectPublicKeyInfo (RFC 8410, section 4). */
    internal fun toPublicKey(): PublicKey =
        KeyFactory.getInstance("Ed25519").generatePublic(X509EncodedKeySpec(X509_PREFIX + raw))

    override fun toString(): String = "BundlePublicKey($keyId)"

    companion object {
        const val SIZE = 32

        /** DER of SEQUENCE { SEQUENCE { OID 1.3.101.112 (Ed25519) }, BIT STRING of 32 bytes }, before the key (RFC 8410). */
        private val X509_PREFIX = byteArrayOf(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00)

        /** From the raw 32-byte key. */
        fun fromRaw(bytes: ByteArray): BundlePublicKey {
            require(bytes.size == SIZE) { "an Ed25519 public key is $SIZE bytes. Found ${bytes.size}." }
            return BundlePublicKey(bytes.copyOf())
        }

        /** From the base64 text `privrec keys generate` writes (surrounding whitespace ignored). */
        fun fromBase64(text: String): BundlePublicKey {
            val bytes = try {
                Base64.getDecoder().decode(text.trim())
            } catch (e: IllegalArgumentException) {
                throw IllegalArgumentException("the public key must be the base64 of a raw 32-byte Ed25519 key, as `privrec keys generate` writes it: ${e.message}")
            }
            return fromRaw(bytes)
        }

        /** From a raw X.509 SubjectPublicKeyInfo of an Ed25519 key (what `PublicKey.getEncoded()` returns on the JVM). */
        fun fromX509(encoded: ByteArray): BundlePublicKey {
            require(encoded.size == X509_PREFIX.size + SIZE && encoded.copyOfRange(0, X509_PREFIX.size).contentEquals(X509_PREFIX)) {
                "not an X.509 Ed25519 public key (${encoded.size} bytes)"
            }
            return fromRaw(encoded.copyOfRange(X509_PREFIX.size, encoded.size))
        }
    }
}

/**
 * `manifest.sig` (docs/BUNDLE.md, "Signed bundles"): `{"algorithm": "ed25519", "key_id", "signature"}`, an
 * Ed25519 signature of the exact bytes of `manifest.json`. The manifest lists every other file's sha256 and
 * size, so this one signature covers the whole bundle, including the privacy ledger and titles an app shows.
 */
object BundleSignature {
    const val FILE = "manifest.sig"
    const val ALGORITHM = "ed25519"
    private const val MAX_BYTES = 4096L
    private const val SIGNATURE_SIZE = 64

    /**
     * Throws a [BundleException] naming `manifest.sig` unless it is a valid signature of [manifestBytes] (the
     * bytes the caller then parses) by [key]: when it is missing (an unsigned bundle), malformed, names another
     * key, or does not verify. Returns the key id.
     */
    fun verify(dir: File, manifestBytes: ByteArray, key: BundlePublicKey): String {
        if (!BundleFiles.exists(dir, FILE)) {
            throw BundleException(FILE, "missing: the bundle is unsigned, and this app pins public key ${key.keyId}. Sign it with `privrec export --sign-key`.")
        }
        val fields = JsonFields.parse(BundleFiles.utf8(BundleFiles.read(dir, FILE, MAX_BYTES), FILE), FILE)
        fields.requireKeys(setOf("algorithm", "key_id", "signature"))
        val algorithm = fields.string("algorithm")
        if (algorithm != ALGORITHM) fields.fail("algorithm", "must be \"$ALGORITHM\". Found \"$algorithm\".")
        val keyId = fields.string("key_id")
        if (keyId != key.keyId) {
            fields.fail("key_id", "is \"$keyId\", not the pinned public key \"${key.keyId}\": the bundle was signed by another key (or the app pins the wrong one).")
        }
        val signature = try {
            Base64.getDecoder().decode(fields.string("signature"))
        } catch (e: IllegalArgumentException) {
            null
        }
        if (signature == null || signature.size != SIGNATURE_SIZE) {
            fields.fail("signature", "must be the base64 of a $SIGNATURE_SIZE-byte Ed25519 signature.")
        }
        val valid = try {
            val verifier = Signature.getInstance("Ed25519")
            verifier.initVerify(key.toPublicKey())
            verifier.update(manifestBytes)
            verifier.verify(signature)
        } catch (e: NoSuchAlgorithmException) {
            throw BundleException(FILE, "cannot be checked: this platform's java.security has no Ed25519 (${e.message}); the bundle is refused, not trusted")
        } catch (e: GeneralSecurityException) {
            false
        }
        if (!valid) {
            throw BundleException(FILE, "the signature does not verify manifest.json under public key ${key.keyId}: manifest.json was changed after it was signed, or the bundle is corrupt")
        }
        return key.keyId
    }
}
