package dev.privrec.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.File
import java.nio.file.Files
import java.security.KeyPairGenerator
import java.security.Signature
import java.util.Base64

/**
 * Signed bundles (docs/BUNDLE.md, "Signed bundles"): `manifest.sig` over the exact bytes of `manifest.json`,
 * checked with the publisher's pinned key before any other file is read. The bundles were exported and signed
 * by the Python exporter in the same run (tests/samples/test_android_core.py), which passes the public key's
 * file as `privrec.public_key` / `PRIVREC_PUBLIC_KEY`. The RFC 8032 vector pins the java.security path
 * (raw key -> X.509 -> "Ed25519") to the same golden values the Python tests check.
 */
class SignatureTest {
    @get:Rule
    val tmp = TemporaryFolder()

    private fun copyOf(dir: File, name: String): File {
        val copy = tmp.newFolder(name)
        dir.copyRecursively(copy, overwrite = true)
        return copy
    }

    /** A fresh key pair of another publisher (or an attacker): the private key and its public half as the app would pin it. */
    private fun otherKey(): Pair<java.security.PrivateKey, BundlePublicKey> {
        val pair = KeyPairGenerator.getInstance("Ed25519").generateKeyPair()
        return Pair(pair.private, BundlePublicKey.fromX509(pair.public.encoded))
    }

    private fun writeSignature(dir: File, keyId: String, signature: ByteArray) {
        val record = linkedMapOf<String, Any?>("algorithm" to "ed25519", "key_id" to keyId, "signature" to Base64.getEncoder().encodeToString(signature))
        File(dir, BundleSignature.FILE).writeText(Json.write(record))
    }

    @Test
    fun theRfc8032VectorVerifies() {
        // RFC 8032, section 7.1, TEST 1: the empty message.
        val key = BundlePublicKey.fromBase64("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n")
        assertEquals("21fe31dfa154a261", key.keyId)
        val dir = tmp.newFolder("rfc8032")
        val signature = Base64.getDecoder().decode("5VZDAMNgrHKQhuLMgG6CioSHfx645dl02HPgZSJJAVVfuIIVkKM7rMYeOXAc+bRr0lv18FlbviRlUUFDjnoQCw==")
        writeSignature(dir, key.keyId, signature)
        assertEquals("21fe31dfa154a261", BundleSignature.verify(dir, ByteArray(0), key))
        assertRefused("manifest.sig", "does not verify manifest.json") { BundleSignature.verify(dir, byteArrayOf(0), key) }
    }

    @Test
    fun exportedBundlesVerifyWithThePinnedKey() {
        val key = TestInputs.publicKey()
        for (dir in TestInputs.bundleDirs()) {
            val bundle = Bundle.load(dir, key)
            val manifestBytes = File(dir, Manifest.FILE).readBytes()
            assertEquals(key.keyId, BundleSignature.verify(dir, manifestBytes, key))
            println("${dir.name}: manifest.sig verifies with pinned key ${key.keyId} (${bundle.manifest.numItems} items)")
        }
    }

    @Test
    fun aWrongKeyIsRefused() {
        val (_, wrong) = otherKey()
        for (dir in TestInputs.bundleDirs()) {
            assertRefused("manifest.sig", "not the pinned public key \"${wrong.keyId}\"") { Bundle.load(dir, wrong) }
        }
    }

    @Test
    fun aManifestEditedAfterSigningIsRefused() {
        val base = TestInputs.bundleDirs().first()
        val key = TestInputs.publicKey()
        val ledger = copyOf(base, "ledger")
        editManifest(ledger) {
            @Suppress("UNCHECKED_CAST")
            val privacy = it["privacy"] as MutableMap<String, Any?>
            privacy["epsilon"] = 0.1
            privacy["mode"] = "central"
        }
        assertRefused("manifest.sig", "does not verify manifest.json") { Bundle.load(ledger, key) }
        // Still self-consistent: without a key nothing can tell (every listed hash matches).
        assertEquals(0.1, Bundle.load(ledger, null, allowUnsigned = true).manifest.privacy.epsilon()!!, 0.0)

        val whitespace = copyOf(base, "whitespace")
        File(whitespace, Manifest.FILE).appendText("\n")
        assertRefused("manifest.sig", "does not verify manifest.json") { Bundle.load(whitespace, key) }
    }

    @Test
    fun anUnsignedBundleIsRefusedUnlessExplicitlyAllowed() {
        val dir = copyOf(TestInputs.bundleDirs().first(), "unsigned")
        assertTrue(File(dir, BundleSignature.FILE).delete())
        assertRefused("manifest.sig", "missing: the bundle is unsigned") { Bundle.load(dir, TestInputs.publicKey()) }
        try {
            Bundle.load(dir, null)
            fail("expected an unsigned load without allowUnsigned to be refused")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message!!, e.message!!.contains("a pinned public key is required"))
        }
        try {
            Bundle.load(dir, TestInputs.publicKey(), allowUnsigned = true)
            fail("expected a pinned key with allowUnsigned to be refused")
        } catch (e: IllegalArgumentException) {
            assertTrue(e.message!!, e.message!!.contains("cannot be combined"))
        }
        assertEquals(TestInputs.bundleDirs().first().let { Bundle.load(it, TestInputs.publicKey()).manifest.modelVersion },
            Bundle.load(dir, null, allowUnsigned = true).manifest.modelVersion)
    }

    @Test
    fun aForeignSignatureClaimingThePinnedKeyIsRefused() {
        val dir = copyOf(TestInputs.bundleDirs().first(), "foreign")
        val key = TestInputs.publicKey()
        val (attacker, _) = otherKey()
        val signer = Signature.getInstance("Ed25519")
        signer.initSign(attacker)
        signer.update(File(dir, Manifest.FILE).readBytes())
        writeSignature(dir, key.keyId, signer.sign())
        assertRefused("manifest.sig", "does not verify manifest.json") { Bundle.load(dir, key) }
        writeSignature(dir, key.keyId, ByteArray(10))
        assertRefused("manifest.sig", "field \"signature\" must be the base64 of a 64-byte") { Bundle.load(dir, key) }
        File(dir, BundleSignature.FILE).writeText("[" + "[".repeat(5000))
        assertRefused("manifest.sig", "larger than the 4096 bytes") { Bundle.load(dir, key) }
    }

    @Test
    fun theSignatureIsCheckedBeforeAnyOtherFile() {
        val dir = copyOf(TestInputs.bundleDirs().first(), "before")
        assertTrue(File(dir, WeightsFile.FILE).delete())
        editManifest(dir) { it["schema_version"] = 2 }
        assertRefused("manifest.sig", "does not verify manifest.json") { Bundle.load(dir, TestInputs.publicKey()) }
    }

    @Test
    fun pathRulesHoldEvenWithoutASignature() {
        val base = TestInputs.bundleDirs().first()
        // A listed file replaced by a link to a copy outside the bundle: same bytes, same hash, still refused.
        val linked = copyOf(base, "linked")
        val outside = tmp.newFile("outside.json")
        File(linked, Golden.FILE).copyTo(outside, overwrite = true)
        assertTrue(File(linked, Golden.FILE).delete())
        Files.createSymbolicLink(File(linked, Golden.FILE).toPath(), outside.toPath())
        assertRefused("golden.json", "is a symbolic link") { Bundle.load(linked, null, allowUnsigned = true) }

        // A graph path in the ONNX details outside the bundle, or not listed.
        val absolute = copyOf(base, "absolute")
        editManifest(absolute) {
            @Suppress("UNCHECKED_CAST")
            val onnx = (it["artifacts"] as Map<String, Any?>)["onnx"] as MutableMap<String, Any?>
            @Suppress("UNCHECKED_CAST")
            val graphs = (onnx["details"] as MutableMap<String, Any?>)["graphs"] as MutableMap<String, Any?>
            graphs["score"] = "/etc/evil.onnx"
        }
        assertRefused("manifest.json", "field \"artifacts.onnx.details.graphs.score\" holds \"/etc/evil.onnx\", an absolute path") {
            Bundle.load(absolute, null, allowUnsigned = true)
        }
        val unlisted = copyOf(base, "unlisted")
        editManifest(unlisted) {
            @Suppress("UNCHECKED_CAST")
            val onnx = (it["artifacts"] as Map<String, Any?>)["onnx"] as MutableMap<String, Any?>
            @Suppress("UNCHECKED_CAST")
            (onnx["details"] as MutableMap<String, Any?>)["external_data"] = "golden.json"
        }
        assertRefused("manifest.json", "names \"golden.json\", which is not a file (or a directory of files) of \"artifacts.onnx.files\"") {
            Bundle.load(unlisted, null, allowUnsigned = true)
        }
    }

    @Test
    fun limitsAreCheckedBeforeAnyWork() {
        val dir = copyOf(TestInputs.bundleDirs().first(), "steps")
        editManifest(dir) {
            @Suppress("UNCHECKED_CAST")
            (it["finetune"] as MutableMap<String, Any?>)["steps"] = 1000000000
        }
        assertRefused("manifest.json", "field \"finetune.steps\" must be in [1, 1000]. Found 1000000000.") {
            Bundle.load(dir, null, allowUnsigned = true)
        }
        val deep = copyOf(TestInputs.bundleDirs().first(), "deep")
        val text = File(deep, Manifest.FILE).readText()
        File(deep, Manifest.FILE).writeText(text.replaceFirst("\"ledger\": []", "\"ledger\": " + "[".repeat(100000) + "]".repeat(100000)))
        assertRefused("manifest.json", "nesting deeper than 64 levels") { Bundle.load(deep, null, allowUnsigned = true) }
    }
}
