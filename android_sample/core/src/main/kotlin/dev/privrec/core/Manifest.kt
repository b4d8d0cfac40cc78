package dev.privrec.core

import java.util.Locale

/** One input or output of a signature: name, dtype (numpy name) and shape (-1 = dynamic). */
data class TensorSpec(val name: String, val dtype: String, val shape: List<Int>)

/** The inputs and outputs of one signature (`score`, `recommend`, `finetune`). */
data class SignatureSpec(val inputs: List<TensorSpec>, val outputs: List<TensorSpec>)

/** dtype and shape of one tensor in `weights.safetensors`. */
data class WeightSpec(val dtype: String, val shape: List<Int>)

/** One catalog entry: model row [index], data-set [id], display [title]. */
data class CatalogItem(val index: Int, val id: String, val title: String)

/** sha256 (lowercase hex) and size in bytes of one bundle file. */
data class FileEntry(val sha256: String, val size: Long)

/**
 * The manifest's optional `item_features` field `{"file": "item_features.safetensors", "columns": f}`: public
 * item features (genres, ...) of a model whose item table is tied to them. [file] is always
 * [ItemFeaturesFile.FILE] and listed in `files` (so its sha256 is checked like every file's); it holds one
 * F32 tensor `item_features` of shape `[numItems, columns]`, read by [ItemFeaturesFile.read].
 */
data class ItemFeatures(val file: String, val columns: Int)

/** One exported format: its files (relative to the bundle), precision and format-specific details. */
data class Artifact(val files: List<String>, val precision: String, val details: Map<String, Any?>)

/**
 * The manifest's `finetune` block: the reconstruction recipe every device follows ([Reconstruction]).
 * [steps] are baked into the artifacts; [lr] and [l2] are the inputs of every `finetune` call; a full
 * reconstruction makes [calls] calls over the whole catalog (1 when the manifest has no `calls`),
 * labelling the item `r` interactions before the latest `0.5^(r / recencyHalfLife)` (1 when
 * [recencyHalfLife] is null or absent).
 */
data class FinetuneSpec(val steps: Int, val lr: Double, val l2: Double, val calls: Int = 1, val recencyHalfLife: Double? = null)

/**
 * The manifest's `privacy` object as the trainer wrote it (sdk/privacy/ledger.py): [mode] (`none` for
 * central training, `central` or `distributed` for DP federated training, `off` for federated without
 * noise), the DP [ledger] entries, and the [raw] object with the summary `epsilon` / `delta`.
 * JSON has no infinity, so `"epsilon": null` means "no guarantee" in mode `off` and "no claim" in `none`.
 */
data class Privacy(val mode: String, val ledger: List<Map<String, Any?>>, val raw: Map<String, Any?>) {
    private fun number(v: Any?): Double? = when (v) {
        is Double -> v
        is Long -> v.toDouble()
        else -> null
    }

    /** User-level ε of the training run, or null when there is no finite guarantee (see [mode]). */
    fun epsilon(): Double? = number(raw["epsilon"])

    /** δ that goes with [epsilon], or null. */
    fun delta(): Double? = number(raw["delta"])

    /** One line for a privacy screen. */
    fun summary(): String {
        val eps = epsilon()
        return when {
            eps != null -> "Trained with user-level differential privacy: ε = ${"%.3g".format(Locale.ROOT, eps)}, δ = ${"%.1e".format(Locale.ROOT, delta() ?: 0.0)} ($mode)."
            mode == "off" -> "Trained federated without differential privacy: ε = ∞ (no guarantee)."
            mode == "none" -> "Trained centrally: no differential-privacy claim."
            else -> "No privacy guarantee recorded (mode \"$mode\")."
        }
    }
}

/**
 * `manifest.json`, schema version 1 (docs/BUNDLE.md), parsed and checked field by field.
 *
 * The reader is deliberately strict: unknown or missing keys, a signature whose names, dtypes or shapes
 * differ from the contract, or weights whose dtype disagrees with [precision] all raise a
 * [BundleException] naming `manifest.json` and the field. A schema change therefore shows up as a failing
 * test here rather than as a silently wrong app. The one optional top-level key is `item_features`
 * ([ItemFeatures]; null or absent when the bundle ships no item features).
 */
class Manifest(
    val schemaVersion: Int,
    val modelVersion: String,
    val privrecVersion: String,
    val dim: Int,
    val numItems: Int,
    val precision: String,
    val sparsity: Double,
    val topK: Int,
    val finetune: FinetuneSpec,
    val items: List<CatalogItem>,
    val weights: Map<String, WeightSpec>,
    val signatures: Map<String, SignatureSpec>,
    val artifacts: Map<String, Artifact>,
    val files: Map<String, FileEntry>,
    val privacy: Privacy,
    /** The optional `item_features` field, or null when the bundle ships no item features. */
    val itemFeatures: ItemFeatures? = null
) {
    /** Title of model row [index], or `"#index"` when the catalog has no entry for it. */
    fun title(index: Int): String {
        val item = itemsByIndex[index]
        return if (item == null || item.title.length == 0) "#$index" else item.title
    }

    private val itemsByIndex: Map<Int, CatalogItem> by lazy { items.associateBy { it.index } }

    /** Row ↔ the app's item id ([ItemMap]; the implicit `r.toString()` map when `items` is empty). */
    val itemMap: ItemMap by lazy { ItemMap.of(items, numItems) }

    companion object {
        const val FILE = "manifest.json"
        const val SCHEMA_VERSION = 1
        // Limits checked before anything is computed (docs/BUNDLE.md, "Limits"; privrec/export/manifest.py).
        const val MAX_DIM = 4096
        const val MAX_NUM_ITEMS = 10000000
        const val MAX_FINETUNE_STEPS = 1000
        const val MAX_FINETUNE_CALLS = 1000
        val PRECISIONS = setOf("float32", "int8")
        val TOP_LEVEL_KEYS = setOf(
            "schema_version", "model_version", "privrec_version", "dim", "num_items", "precision",
            "sparsity", "top_k", "finetune", "items", "weights", "signatures", "artifacts", "files", "privacy"
        )
        /** Top-level keys a bundle may omit (privrec/export/manifest.py keeps them in `Manifest.extra`). */
        val OPTIONAL_TOP_LEVEL_KEYS = setOf("item_features")

        /** The signatures every artifact must expose (docs/BUNDLE.md), for a model of this shape. */
        fun expectedSignatures(dim: Int, numItems: Int, topK: Int): Map<String, SignatureSpec> {
            fun t(name: String, dtype: String, vararg shape: Int) = TensorSpec(name, dtype, shape.toList())
            return mapOf(
                "score" to SignatureSpec(
                    listOf(t("user", "float32", dim), t("item_ids", "int32", -1)),
                    listOf(t("scores", "float32", -1))
                ),
                "recommend" to SignatureSpec(
                    listOf(t("user", "float32", dim), t("mask", "float32", numItems)),
                    listOf(t("top_ids", "int32", topK), t("top_scores", "float32", topK))
                ),
                "finetune" to SignatureSpec(
                    listOf(
                        t("user", "float32", dim), t("item_ids", "int32", -1), t("labels", "float32", -1),
                        t("lr", "float32", 1), t("l2", "float32", 1)
                    ),
                    listOf(t("user_out", "float32", dim), t("loss", "float32", 1))
                )
            )
        }

        /** The tensors `weights.safetensors` must hold for this precision and shape. */
        fun expectedWeights(precision: String, dim: Int, numItems: Int): Map<String, WeightSpec> {
            val table = WeightSpec(precision, listOf(numItems, dim))
            val bias = WeightSpec("float32", listOf(numItems))
            return if (precision == "int8") {
                mapOf("item_embedding" to table, "item_scale" to WeightSpec("float32", listOf(numItems)), "item_bias" to bias)
            } else {
                mapOf("item_embedding" to table, "item_bias" to bias)
            }
        }

        fun parse(text: String): Manifest = fromJson(JsonFields.parse(text, FILE))

        fun fromJson(root: JsonFields): Manifest {
            val version = root.int("schema_version")
            if (version != SCHEMA_VERSION) {
                root.fail("schema_version", "is $version; this reader knows schema version $SCHEMA_VERSION only.")
            }
            root.requireKeys(TOP_LEVEL_KEYS, OPTIONAL_TOP_LEVEL_KEYS)
            val dim = root.int("dim")
            if (dim <= 0 || dim > MAX_DIM) root.fail("dim", "must be in [1, $MAX_DIM]. Found $dim.")
            val numItems = root.int("num_items")
            if (numItems <= 0 || numItems > MAX_NUM_ITEMS) root.fail("num_items", "must be in [1, $MAX_NUM_ITEMS]. Found $numItems.")
            if (dim.toLong() * numItems > Int.MAX_VALUE) {
                root.fail("num_items", "× dim must be at most ${Int.MAX_VALUE} (the table is one array). Found $numItems × $dim.")
            }
            val precision = root.string("precision")
            if (precision !in PRECISIONS) root.fail("precision", "must be one of ${PRECISIONS.sorted()}. Found \"$precision\".")
            val sparsity = root.double("sparsity")
            if (!(sparsity >= 0.0 && sparsity <= 1.0)) root.fail("sparsity", "must be in [0, 1]. Found $sparsity.")
            val topK = root.int("top_k")
            if (topK <= 0 || topK > numItems) root.fail("top_k", "must be in [1, $numItems]. Found $topK.")

            val finetune = finetuneSpec(root.obj("finetune"))

            val items = itemMap(root, numItems)

            val weightsObj = root.obj("weights")
            val weights = LinkedHashMap<String, WeightSpec>()
            for (name in weightsObj.map.keys) {
                val w = weightsObj.obj(name)
                w.requireKeys(setOf("dtype", "shape"))
                weights[name] = WeightSpec(w.string("dtype"), w.ints("shape").toList())
            }
            val expectedWeights = expectedWeights(precision, dim, numItems)
            if (weights != expectedWeights) {
                root.fail("weights", "must be $expectedWeights for a $precision model. Found $weights.")
            }

            val sigObj = root.obj("signatures")
            val signatures = LinkedHashMap<String, SignatureSpec>()
            for (name in sigObj.map.keys) {
                val s = sigObj.obj(name)
                s.requireKeys(setOf("inputs", "outputs"))
                signatures[name] = SignatureSpec(tensorSpecs(s, "inputs"), tensorSpecs(s, "outputs"))
            }
            val expectedSigs = expectedSignatures(dim, numItems, topK)
            for ((name, expected) in expectedSigs) {
                val found = signatures[name] ?: sigObj.fail(name, "is missing (every bundle has score, recommend, finetune).")
                if (found != expected) sigObj.fail(name, "must be $expected. Found $found.")
            }
            if (signatures.keys != expectedSigs.keys) {
                root.fail("signatures", "must name exactly ${expectedSigs.keys}. Found ${signatures.keys}.")
            }

            val artObj = root.obj("artifacts")
            val artifacts = LinkedHashMap<String, Artifact>()
            for (name in artObj.map.keys) {
                val a = artObj.obj(name)
                a.requireKeys(setOf("files", "precision", "details"))
                val files = a.list("files").mapIndexed { i, f -> f as? String ?: a.fail("files[$i]", "must be a string.") }
                artifacts[name] = Artifact(files, a.string("precision"), a.obj("details").map)
            }

            val filesObj = root.obj("files")
            val files = LinkedHashMap<String, FileEntry>()
            for (path in filesObj.map.keys) {
                val f = filesObj.obj(path)
                f.requireKeys(setOf("sha256", "size"))
                val sha = f.string("sha256")
                if (!SHA256_HEX.matches(sha)) f.fail("sha256", "must be 64 lowercase hex digits. Found \"$sha\".")
                val size = f.long("size")
                if (size < 0) f.fail("size", "must be >= 0. Found $size.")
                if (!isSafeRelativePath(path)) filesObj.fail(path, "is not a plain relative path inside the bundle: ${BundleFiles.pathProblem(path)}.")
                if (path in BundleFiles.RESERVED) filesObj.fail(path, "is never listed (manifest.json and manifest.sig cannot hash themselves).")
                files[path] = FileEntry(sha, size)
            }
            for (required in listOf(WeightsFile.FILE, Golden.FILE)) {
                if (required !in files) filesObj.fail(required, "is missing: every bundle lists its weights and golden file.")
            }
            for ((name, art) in artifacts) {
                for ((i, f) in art.files.withIndex()) {
                    val problem = BundleFiles.pathProblem(f)
                    if (problem != null) artObj.fail("$name.files[$i]", "holds \"$f\", $problem.")
                    if (f !in files) artObj.fail(name, "lists \"$f\", which \"files\" does not.")
                }
                checkDetailPaths(name, art)
            }

            val itemFeatures = itemFeaturesField(root, files)

            // `privacy` is the trainer's ledger object: {"mode": ..., "ledger": [...]} at least when present.
            val p = root.obj("privacy")
            val mode = if (p.has("mode")) p.string("mode") else "unknown"
            val ledger = if (p.has("ledger")) p.objects("ledger").map { it.map } else emptyList()

            return Manifest(
                version, root.string("model_version"), root.string("privrec_version"), dim, numItems, precision,
                sparsity, topK, finetune, items, weights, signatures, artifacts, files, Privacy(mode, ledger, p.map),
                itemFeatures
            )
        }

        private val SHA256_HEX = Regex("[0-9a-f]{64}")

        /** Keys of an artifact's `details` whose values (at any depth) are bundle paths a runner may open. */
        private val DETAIL_PATH_KEYS = setOf("external_data", "file", "files", "graphs", "packages", "path", "paths")

        /**
         * Every leaf under a key of [DETAIL_PATH_KEYS] in `artifacts.<name>.details` (ONNX `graphs`, `external_data`;
         * Core ML `variants.*.packages`, `variants.*.files`) must be a valid path naming a file of the artifact,
         * or a directory holding some of them (a Core ML package): a runner opens only listed files.
         */
        private fun checkDetailPaths(name: String, art: Artifact) {
            val found = ArrayList<Pair<String, Any?>>()
            collectDetailPaths(art.details, "artifacts.$name.details", false, found)
            for ((where, value) in found) {
                if (value !is String) throw BundleException(FILE, "field \"$where\" must be a path string. Found $value.")
                val problem = BundleFiles.pathProblem(value)
                if (problem != null) {
                    throw BundleException(FILE, "field \"$where\" holds \"$value\", $problem: every path in a bundle is relative, normalised and inside it.")
                }
                if (value !in art.files && art.files.none { it.startsWith("$value/") }) {
                    throw BundleException(FILE, "field \"$where\" names \"$value\", which is not a file (or a directory of files) of \"artifacts.$name.files\".")
                }
            }
        }

        private fun collectDetailPaths(node: Any?, where: String, underPathKey: Boolean, out: MutableList<Pair<String, Any?>>) {
            when (node) {
                is Map<*, *> -> for ((k, v) in node) {
                    collectDetailPaths(v, "$where.$k", underPathKey || (k is String && k in DETAIL_PATH_KEYS), out)
                }
                is List<*> -> for ((i, v) in node.withIndex()) collectDetailPaths(v, "$where[$i]", underPathKey, out)
                else -> if (underPathKey) out.add(Pair(where, node))
            }
        }

        /** `finetune`: `steps`, `lr`, `l2` required; `calls` (default 1) and `recency_half_life` (default null) optional. */
        /**
         * The item map (`items`): empty (no metadata: row `r` holds id `r.toString()`) or one entry per row in
         * any order, the indices a permutation of `0 until numItems`, the ids the app's own, non-empty and
         * unique (a device stores its history by them). Entries may carry more metadata than
         * index/id/title (genres, year, ...). Returned sorted by index.
         */
        private fun itemMap(root: JsonFields, numItems: Int): List<CatalogItem> {
            val itemObjs = root.objects("items")
            if (itemObjs.isNotEmpty() && itemObjs.size != numItems) {
                root.fail("items", "must be empty or hold one entry per item ($numItems). Found ${itemObjs.size}.")
            }
            val atIndex = HashMap<Int, Int>()
            val atId = HashMap<String, Int>()
            val items = itemObjs.mapIndexed { pos, o ->
                val index = o.int("index")
                if (index < 0 || index >= numItems) o.fail("index", "must be in [0, $numItems). Found $index.")
                val other = atIndex.put(index, pos)
                if (other != null) {
                    val present = itemObjs.map { (it.map["index"] as? Long)?.toInt() ?: -1 }.toSet()
                    val missing = (0 until numItems).first { it !in present }
                    o.fail("index", "repeats index $index of items[$other]: the indices must be a permutation of 0..${numItems - 1}, and index $missing has no entry.")
                }
                val id = o.string("id")
                if (id.isEmpty()) o.fail("id", "must be a non-empty string (the app's item id). Found \"\".")
                val sameId = atId.put(id, pos)
                if (sameId != null) o.fail("id", "repeats id \"$id\" of items[$sameId]: item ids must be unique.")
                CatalogItem(index, id, if (o.has("title")) o.string("title") else "")
            }
            return items.sortedBy { it.index }
        }

        private fun finetuneSpec(ft: JsonFields): FinetuneSpec {
            ft.requireKeys(setOf("steps", "lr", "l2"), setOf("calls", "recency_half_life"))
            val steps = ft.int("steps")
            if (steps <= 0 || steps > MAX_FINETUNE_STEPS) ft.fail("steps", "must be in [1, $MAX_FINETUNE_STEPS]. Found $steps.")
            val lr = ft.double("lr")
            if (!(lr > 0.0)) ft.fail("lr", "must be a number > 0. Found $lr.")
            val l2 = ft.double("l2")
            if (!(l2 >= 0.0)) ft.fail("l2", "must be a number >= 0. Found $l2.")
            val calls = if (ft.has("calls")) ft.int("calls") else 1
            if (calls <= 0 || calls > MAX_FINETUNE_CALLS) ft.fail("calls", "must be in [1, $MAX_FINETUNE_CALLS]. Found $calls.")
            val halfLife = if (ft.has("recency_half_life") && ft.raw("recency_half_life") != null) ft.double("recency_half_life") else null
            if (halfLife != null && !(halfLife > 0.0)) ft.fail("recency_half_life", "must be null or a number > 0. Found $halfLife.")
            return FinetuneSpec(steps, lr, l2, calls, halfLife)
        }

        /**
         * The optional `item_features` field, checked as privrec/export/manifest.py `load_item_features` does:
         * null or absent means none; otherwise keys exactly `file` and `columns`, `file` is
         * `"item_features.safetensors"` and listed in `files`, `columns` an integer >= 1.
         */
        private fun itemFeaturesField(root: JsonFields, files: Map<String, FileEntry>): ItemFeatures? {
            if (!root.has("item_features") || root.raw("item_features") == null) return null
            val f = root.obj("item_features")
            f.requireKeys(setOf("file", "columns"))
            val file = f.raw("file")
            if (file !is String || file != ItemFeaturesFile.FILE || file !in files) {
                val found = if (file is String) "\"$file\"" else file.toString()
                f.fail("file", "must be \"${ItemFeaturesFile.FILE}\", listed in \"files\". Found $found.")
            }
            val columns = f.raw("columns")
            if (columns !is Long || columns < 1L || columns > Int.MAX_VALUE) {
                val found = if (columns is String) "\"$columns\"" else columns.toString()
                f.fail("columns", "must be an integer >= 1. Found $found.")
            }
            return ItemFeatures(ItemFeaturesFile.FILE, columns.toInt())
        }

        private fun tensorSpecs(s: JsonFields, key: String): List<TensorSpec> = s.objects(key).map { t ->
            t.requireKeys(setOf("name", "dtype", "shape"))
            TensorSpec(t.string("name"), t.string("dtype"), t.ints("shape").toList())
        }

        /** The path rules of [BundleFiles.pathProblem]: a listed file cannot point outside the bundle. */
        fun isSafeRelativePath(path: String): Boolean = BundleFiles.pathProblem(path) == null
    }
}
