package dev.privrec.core

/**
 * The global item parameters in float32: row-major [embedding] `V` (`numItems × dim`) and [bias] `b`.
 *
 * For an int8 bundle the table is dequantized on load, `V[i, j] = q[i, j] * scale[i]` in float32, exactly
 * as the Python reference does (`item_embedding.astype(float32) * item_scale[:, None]`).
 */
class ItemTable(val numItems: Int, val dim: Int, val embedding: FloatArray, val bias: FloatArray) {
    init {
        require(numItems > 0 && dim > 0) { "numItems and dim must be > 0. Found $numItems, $dim." }
        require(embedding.size == numItems * dim) { "embedding must hold ${numItems * dim} values. Found ${embedding.size}." }
        require(bias.size == numItems) { "bias must hold $numItems values. Found ${bias.size}." }
    }

    companion object {
        /** Dequantizes a symmetric per-row int8 table: `q` (`numItems × dim`, values in [-127, 127]) times `scale[row]`. */
        fun dequantize(q: ByteArray, scale: FloatArray, dim: Int): FloatArray {
            require(q.size == scale.size * dim) { "q must hold ${scale.size * dim} values. Found ${q.size}." }
            val out = FloatArray(q.size)
            for (i in scale.indices) {
                val s = scale[i]
                val base = i * dim
                for (j in 0 until dim) out[base + j] = q[base + j].toFloat() * s
            }
            return out
        }
    }
}

/** Reads `weights.safetensors` and checks it against the manifest's `weights` (dtype and shape of every tensor). */
object WeightsFile {
    const val FILE = "weights.safetensors"
    private val SAFETENSORS_DTYPE = mapOf("float32" to "F32", "int8" to "I8", "int32" to "I32")

    fun read(bytes: ByteArray, manifest: Manifest): ItemTable {
        val tensors = SafeTensors.read(bytes, FILE)
        if (tensors.keys != manifest.weights.keys) {
            throw BundleException(FILE, "holds tensors ${tensors.keys.sorted()}; manifest.json \"weights\" lists ${manifest.weights.keys.sorted()}")
        }
        for ((name, spec) in manifest.weights) {
            val t = tensors.getValue(name)
            val dtype = SAFETENSORS_DTYPE[spec.dtype]
            if (t.dtype != dtype) throw BundleException(FILE, "tensor \"$name\" has dtype ${t.dtype}; manifest.json says ${spec.dtype} ($dtype)")
            if (t.shape.toList() != spec.shape) {
                throw BundleException(FILE, "tensor \"$name\" has shape ${t.shape.toList()}; manifest.json says ${spec.shape}")
            }
        }
        val n = manifest.numItems
        val d = manifest.dim
        val bias = tensors.getValue("item_bias").floats()
        checkFinite(bias, "item_bias")
        val embedding = if (manifest.precision == "int8") {
            val q = tensors.getValue("item_embedding").int8s()
            val pos = q.indexOf((-128).toByte())
            if (pos >= 0) throw BundleException(FILE, "tensor \"item_embedding\" must be in [-127, 127] (symmetric int8). Found -128 at flat position $pos.")
            val scale = tensors.getValue("item_scale").floats()
            checkFinite(scale, "item_scale")
            for (i in scale.indices) {
                if (scale[i] <= 0f) throw BundleException(FILE, "tensor \"item_scale\" must be > 0. Found ${scale[i]} at row $i.")
            }
            ItemTable.dequantize(q, scale, d)
        } else {
            tensors.getValue("item_embedding").floats().also { checkFinite(it, "item_embedding") }
        }
        return ItemTable(n, d, embedding, bias)
    }

    private fun checkFinite(values: FloatArray, name: String) {
        for (i in values.indices) {
            if (values[i].isNaN() || values[i].isInfinite()) {
                throw BundleException(FILE, "tensor \"$name\" must be finite. Found ${values[i]} at flat position $i.")
            }
        }
    }
}
