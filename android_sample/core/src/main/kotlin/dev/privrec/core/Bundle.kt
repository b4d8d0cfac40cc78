package dev.privrec.core

import java.io.File

/**
 * A verified privrec bundle on disk (docs/BUNDLE.md): the parsed manifest, the item table from
 * `weights.safetensors`, the golden cases and, when the manifest has an `item_features` field, the public
 * item features from `item_features.safetensors` ([itemFeatures], null otherwise).
 *
 * [load] first checks `manifest.sig` against the publisher's pinned key, then refuses a bundle whose manifest
 * schema, limits, paths, file sizes or sha256s, weight dtypes or shapes, item feature dtype or shape, or golden
 * file do not match, with a [BundleException] naming the file and field. Nothing is read before the signature
 * is checked, and nothing is trusted before the hashes are.
 */
class Bundle private constructor(
    val dir: File,
    val manifest: Manifest,
    val table: ItemTable,
    val golden: Golden,
    val itemFeatures: ItemFeatureTable?
) {

    /** The plain-Kotlin signatures over this bundle's weights. */
    val recommender: Recommender by lazy { Recommender(table) }

    /** Runs every golden case through [backend] (default: the Kotlin math) and returns one result per case. */
    fun selfTest(backend: SelfTest.Signatures = SelfTest.KotlinSignatures(recommender, manifest.topK, manifest.finetune.steps)): List<CaseResult> =
        SelfTest.run(golden, manifest, backend, recommender)

    /**
     * A file of an artifact (`"tflite"`, `"coreml"`, `"onnx"`), or null when the bundle has no such format.
     * The path is checked again (inside the bundle, no symbolic link) when it is resolved.
     */
    fun artifactFile(format: String): File? {
        val files = manifest.artifacts[format]?.files ?: return null
        return files.firstOrNull()?.let { BundleFiles.resolve(dir, it) }
    }

    companion object {
        /**
         * Reads, verifies and parses the bundle in [dir].
         *
         * With [publicKey] (the publisher's key, pinned in the app), `manifest.sig` must be a valid Ed25519
         * signature of the exact bytes of `manifest.json` by that key; it is checked before any other file is
         * read, and the manifest parsed is the one verified. Without a key, [allowUnsigned] must be true
         * (development and tests only): then no signature is checked, and anyone who can write to the bundle can
         * change the model, the titles and the privacy ledger the app shows.
         *
         * Throws [IllegalArgumentException] when neither a key nor [allowUnsigned] is given (or both are), and
         * [BundleException] naming the file when the bundle is unsigned, mis-signed, corrupt or tampered.
         */
        fun load(dir: File, publicKey: BundlePublicKey?, allowUnsigned: Boolean = false): Bundle {
            require(publicKey != null || allowUnsigned) {
                "a pinned public key is required: pass BundlePublicKey.fromBase64(<privrec_signing_key.pub>), or allowUnsigned = true for development"
            }
            require(publicKey == null || !allowUnsigned) {
                "allowUnsigned = true cannot be combined with a pinned key: a pinned key means the bundle must be signed"
            }
            if (!BundleFiles.exists(dir, Manifest.FILE)) {
                throw BundleException(Manifest.FILE, "not found in $dir: is this a bundle written by `privrec export`?")
            }
            val manifestBytes = BundleFiles.read(dir, Manifest.FILE, BundleFiles.MAX_MANIFEST_BYTES)
            if (publicKey != null) {
                BundleSignature.verify(dir, manifestBytes, publicKey)
            } else {
                System.err.println("privrec: WARNING: loading $dir without checking its signature (allowUnsigned = true); pin the publisher's key in an app")
            }
            val manifest = Manifest.parse(BundleFiles.utf8(manifestBytes, Manifest.FILE))
            BundleVerifier.verify(dir, manifest)
            val table = WeightsFile.read(BundleFiles.readListed(dir, manifest, WeightsFile.FILE), manifest)
            val golden = Golden.parse(BundleFiles.utf8(BundleFiles.readListed(dir, manifest, Golden.FILE), Golden.FILE), manifest)
            val features = manifest.itemFeatures?.let { ItemFeaturesFile.read(BundleFiles.readListed(dir, manifest, it.file), manifest) }
            return Bundle(dir, manifest, table, golden, features)
        }
    }
}
