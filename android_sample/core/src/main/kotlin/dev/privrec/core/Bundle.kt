package dev.privrec.core

import java.io.File

/**
 * A verified privrec bundle on disk (docs/BUNDLE.md): the parsed manifest, the item table from
 * `weights.safetensors`, the golden cases and, when the manifest has an `item_features` field, the public
 * item features from `item_features.safetensors` ([itemFeatures], null otherwise).
 *
 * [load] refuses a bundle whose manifest schema, file sizes or sha256s, weight dtypes or shapes, item
 * feature dtype or shape, or golden file do not match, with a [BundleException] naming the file and field.
 * Nothing is trusted before the hashes are checked.
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

    /** A file of an artifact (`"tflite"`, `"coreml"`, `"onnx"`), or null when the bundle has no such format. */
    fun artifactFile(format: String): File? {
        val files = manifest.artifacts[format]?.files ?: return null
        return files.firstOrNull()?.let { File(dir, it) }
    }

    companion object {
        /** Reads, verifies and parses the bundle in [dir]. */
        fun load(dir: File): Bundle {
            val manifestFile = File(dir, Manifest.FILE)
            if (!manifestFile.isFile) throw BundleException(Manifest.FILE, "not found in $dir: is this a bundle written by `privrec export`?")
            val manifest = Manifest.parse(manifestFile.readText(Charsets.UTF_8))
            BundleVerifier.verify(dir, manifest)
            val table = WeightsFile.read(File(dir, WeightsFile.FILE).readBytes(), manifest)
            val golden = Golden.parse(File(dir, Golden.FILE).readText(Charsets.UTF_8), manifest)
            val features = manifest.itemFeatures?.let { ItemFeaturesFile.read(File(dir, it.file).readBytes(), manifest) }
            return Bundle(dir, manifest, table, golden, features)
        }
    }
}
