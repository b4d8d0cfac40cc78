package dev.privrec.core

/**
 * Public item features `F` (`numItems × columns`, row-major [values]) of a bundle whose manifest has an
 * `item_features` field ([ItemFeatures]): row `i` describes model row `i` (genres, decade, ...).
 */
class ItemFeatureTable(val numItems: Int, val columns: Int, val values: FloatArray) {
    init {
        require(numItems > 0 && columns > 0) { "numItems and columns must be > 0. Found $numItems, $columns." }
        require(values.size == numItems * columns) { "values must hold ${numItems * columns} values. Found ${values.size}." }
    }

    /** The features of model row [index] (a copy). */
    fun row(index: Int): FloatArray {
        require(index in 0 until numItems) { "index must be in [0, $numItems). Found $index." }
        return values.copyOfRange(index * columns, (index + 1) * columns)
    }
}

/**
 * Reads `item_features.safetensors` and checks it against the manifest, as privrec/export/manifest.py
 * `load_item_features` does: exactly one tensor `item_features`, dtype F32, shape `[numItems, columns]`,
 * every value finite. Failures are [BundleException]s naming the file.
 */
object ItemFeaturesFile {
    const val FILE = "item_features.safetensors"
    const val TENSOR = "item_features"

    /** The features of [manifest]'s bundle from [bytes] (the file's content), or null when the manifest has none. */
    fun read(bytes: ByteArray, manifest: Manifest): ItemFeatureTable? {
        val spec = manifest.itemFeatures ?: return null
        val tensors = SafeTensors.read(bytes, FILE)
        if (tensors.keys != setOf(TENSOR)) {
            throw BundleException(FILE, "holds tensors ${tensors.keys.sorted()}; manifest.json \"item_features\" needs exactly [$TENSOR]")
        }
        val t = tensors.getValue(TENSOR)
        if (t.dtype != "F32") throw BundleException(FILE, "tensor \"$TENSOR\" has dtype ${t.dtype}; it must be F32 (float32)")
        val shape = listOf(manifest.numItems, spec.columns)
        if (t.shape.toList() != shape) {
            throw BundleException(FILE, "tensor \"$TENSOR\" has shape ${t.shape.toList()}; manifest.json says $shape (num_items, item_features.columns)")
        }
        val values = t.floats()
        for (i in values.indices) {
            if (values[i].isNaN() || values[i].isInfinite()) {
                throw BundleException(FILE, "tensor \"$TENSOR\" must be finite. Found ${values[i]} at flat position $i.")
            }
        }
        return ItemFeatureTable(manifest.numItems, spec.columns, values)
    }
}
