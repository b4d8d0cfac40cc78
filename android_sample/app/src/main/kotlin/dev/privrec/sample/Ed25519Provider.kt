package dev.privrec.sample

import org.bouncycastle.crypto.params.Ed25519PublicKeyParameters
import org.bouncycastle.crypto.signers.Ed25519Signer
import java.security.InvalidKeyException
import java.security.InvalidParameterException
import java.security.Key
import java.security.KeyFactorySpi
import java.security.PrivateKey
import java.security.Provider
import java.security.PublicKey
import java.security.Security
import java.security.SignatureException
import java.security.SignatureSpi
import java.security.spec.InvalidKeySpecException
import java.security.spec.KeySpec
import java.security.spec.X509EncodedKeySpec

/**
 * java.security "Ed25519" (verification only) on every Android release the app supports.
 *
 * The core checks `manifest.sig` with `KeyFactory.getInstance("Ed25519")` and `Signature.getInstance("Ed25519")`.
 * Android's own providers lack them on many releases this app runs on (API 26+), and on some devices
 * the lookup lands on the AndroidKeyStore provider, which only accepts keys it holds itself. Without a working
 * Ed25519 the core refuses every bundle (it never trusts an unchecked one). [install] puts a provider that
 * offers exactly these two services, backed by Bouncy Castle's Ed25519 (RFC 8032), first in the provider list.
 * It offers no other algorithm, so the Keystore and the interaction store's AES-GCM are untouched.
 */
object Ed25519Support {
    const val PROVIDER_NAME = "PrivRecEd25519"

    /** Registers the provider once per process (idempotent); call before `Bundle.load`. */
    @Synchronized
    fun install() {
        if (Security.getProvider(PROVIDER_NAME) == null) Security.insertProviderAt(Ed25519Provider(), 1)
    }
}

private const val ALGORITHM = "Ed25519"
private const val RAW_KEY_SIZE = 32

/** DER of SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING of 32 bytes }, before the raw key (RFC 8410). */
private val X509_PREFIX = byteArrayOf(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00)

/** The raw 32-byte key inside an X.509 Ed25519 SubjectPublicKeyInfo, or null when [encoded] is not one. */
private fun rawKey(encoded: ByteArray?): ByteArray? {
    if (encoded == null || encoded.size != X509_PREFIX.size + RAW_KEY_SIZE) return null
    if (!encoded.copyOfRange(0, X509_PREFIX.size).contentEquals(X509_PREFIX)) return null
    return encoded.copyOfRange(X509_PREFIX.size, encoded.size)
}

// Older Android releases lack Provider(String, String, String); this constructor exists on all (deprecated on newer JVMs).
@Suppress("DEPRECATION")
private class Ed25519Provider : Provider(
    Ed25519Support.PROVIDER_NAME, 1.0, "Ed25519 signature verification (Bouncy Castle) for privrec bundles"
) {
    init {
        // Services built in code, not named by class: no reflection, so code shrinking cannot break them.
        putService(Ed25519Service(this, "KeyFactory") { Ed25519KeyFactory() })
        putService(Ed25519Service(this, "Signature") { Ed25519Verifier() })
    }

    private class Ed25519Service(provider: Provider, type: String, private val create: () -> Any) :
        Provider.Service(provider, type, ALGORITHM, "dev.privrec.sample.Ed25519Provider.$type", listOf("1.3.101.112", "OID.1.3.101.112"), null) {
        override fun newInstance(constructorParameter: Any?): Any = create()
    }
}

/** An Ed25519 public key as java.security passes it around: its X.509 encoding. */
private class Ed25519PublicKey(private val encoded: ByteArray) : PublicKey {
    override fun getAlgorithm(): String = ALGORITHM
    override fun getFormat(): String = "X.509"
    override fun getEncoded(): ByteArray = encoded.copyOf()
}

/** X.509-encoded Ed25519 public keys only (what the core's `BundlePublicKey` builds). */
private class Ed25519KeyFactory : KeyFactorySpi() {
    override fun engineGeneratePublic(keySpec: KeySpec?): PublicKey {
        val encoded = (keySpec as? X509EncodedKeySpec)?.encoded
        if (rawKey(encoded) == null) throw InvalidKeySpecException("not an X.509 Ed25519 public key")
        return Ed25519PublicKey(encoded!!)
    }

    override fun engineGeneratePrivate(keySpec: KeySpec?): PrivateKey =
        throw InvalidKeySpecException("this provider verifies signatures only: no private keys")

    override fun <T : KeySpec?> engineGetKeySpec(key: Key?, keySpec: Class<T>?): T {
        val encoded = key?.encoded
        if (keySpec == null || rawKey(encoded) == null || !keySpec.isAssignableFrom(X509EncodedKeySpec::class.java)) {
            throw InvalidKeySpecException("only the X.509 spec of an Ed25519 public key")
        }
        return keySpec.cast(X509EncodedKeySpec(encoded))
    }

    override fun engineTranslateKey(key: Key?): Key {
        val encoded = key?.encoded
        if (key !is PublicKey || rawKey(encoded) == null) throw InvalidKeyException("not an Ed25519 public key")
        return Ed25519PublicKey(encoded!!)
    }
}

/** Ed25519 (pure, RFC 8032) verification of the bytes passed to `update`. */
private class Ed25519Verifier : SignatureSpi() {
    private var signer: Ed25519Signer? = null

    override fun engineInitVerify(publicKey: PublicKey?) {
        val raw = rawKey(publicKey?.encoded) ?: throw InvalidKeyException("not an Ed25519 public key")
        val s = Ed25519Signer()
        s.init(false, Ed25519PublicKeyParameters(raw, 0))
        signer = s
    }

    override fun engineInitSign(privateKey: PrivateKey?) {
        throw InvalidKeyException("this provider verifies signatures only")
    }

    override fun engineUpdate(b: Byte) {
        started().update(b)
    }

    override fun engineUpdate(b: ByteArray?, off: Int, len: Int) {
        if (b == null) throw SignatureException("no data")
        started().update(b, off, len)
    }

    override fun engineSign(): ByteArray = throw SignatureException("this provider verifies signatures only")

    /** False for a wrong signature or one that is not 64 bytes; the signer is reset for the next message. */
    override fun engineVerify(sigBytes: ByteArray?): Boolean = sigBytes != null && started().verifySignature(sigBytes)

    @Deprecated("java.security.SignatureSpi's parameter API is deprecated")
    override fun engineSetParameter(param: String?, value: Any?) {
        throw InvalidParameterException("Ed25519 has no parameters")
    }

    @Deprecated("java.security.SignatureSpi's parameter API is deprecated")
    override fun engineGetParameter(param: String?): Any? =
        throw InvalidParameterException("Ed25519 has no parameters")

    private fun started(): Ed25519Signer = signer ?: throw SignatureException("not initialised: call initVerify first")
}
