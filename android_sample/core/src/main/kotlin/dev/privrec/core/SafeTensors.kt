package dev.privrec.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * One tensor of a safetensors file: [dtype] as safetensors spells it (`F32`, `I8`, `I32`), [shape], and
 * its little-endian bytes.
 */
class RawTensor(val name: String, val dtype: String, val shape: IntArray, private val bytes: ByteArray,
                private val offset: Int, private val length: Int) {

    val elementCount: Int get() = shape.fold(1) { a, b -> a * b }

    fun floats(): FloatArray {
        require(dtype == "F32") { "$name is $dtype, not F32" }
        val out = FloatArray(length / 4)
        ByteBuffer.wrap(bytes, offset, length).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(out)
        return out
    }

    fun int8s(): ByteArray {
        require(dtype == "I8") { "$name is $dtype, not I8" }
        return bytes.copyOfRange(offset, offset + length)
    }
}

/**
 * A reader for the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
 * header length `n`, `n` bytes of JSON (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, ...}`,
 * optional `"__metadata__"`), then the data; offsets are relative to the end of the header.
 * Every offset and size is checked, so a truncated or hand-edited file fails with a message, not garbage.
 */
object SafeTensors {
    private val DTYPE_SIZE = mapOf("F64" to 8, "F32" to 4, "F16" to 2, "BF16" to 2, "I64" to 8, "I32" to 4,
        "I16" to 2, "I8" to 1, "U8" to 1, "BOOL" to 1)

    /** Parses [bytes], the content of bundle file [file]; failures are [BundleException]s naming it. */
    fun read(bytes: ByteArray, file: String): Map<String, RawTensor> {
        if (bytes.size < 8) throw BundleException(file, "is ${bytes.size} bytes, too short for a safetensors header")
        val n = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).long
        if (n < 2 || n > bytes.size - 8L) {
            throw BundleException(file, "header length $n does not fit a file of ${bytes.size} bytes")
        }
        val header = JsonFields.parse(String(bytes, 8, n.toInt(), Charsets.UTF_8), file)
        val dataStart = 8 + n.toInt()
        val dataSize = bytes.size - dataStart
        val out = LinkedHashMap<String, RawTensor>()
        val spans = ArrayList<Triple<Long, Long, String>>()
        for (name in header.map.keys) {
            if (name == "__metadata__") {
                val meta = header.obj(name)
                for (k in meta.map.keys) meta.string(k)
                continue
            }
            val t = header.obj(name)
            t.requireKeys(setOf("dtype", "shape", "data_offsets"))
            val dtype = t.string("dtype")
            val size = DTYPE_SIZE[dtype] ?: t.fail("dtype", "is not a known safetensors dtype. Found \"$dtype\".")
            val shape = t.ints("shape")
            if (shape.any { it < 0 }) t.fail("shape", "must be non-negative. Found ${shape.toList()}.")
            val offsets = t.list("data_offsets")
            val begin = offsets.getOrNull(0) as? Long
            val end = offsets.getOrNull(1) as? Long
            if (offsets.size != 2 || begin == null || end == null || begin < 0 || end < begin || end > dataSize) {
                t.fail("data_offsets", "must be [begin, end] within the $dataSize data bytes. Found $offsets.")
            }
            val numel = shape.fold(1L) { a, b -> a * b }
            if (end - begin != numel * size) {
                t.fail("data_offsets", "span ${end - begin} bytes, but $dtype${shape.toList()} needs ${numel * size}.")
            }
            spans.add(Triple(begin, end, name))
            out[name] = RawTensor(name, dtype, shape, bytes, dataStart + begin.toInt(), (end - begin).toInt())
        }
        // The tensors fill the data section exactly: no gap, overlap, missing or extra byte (docs/BUNDLE.md).
        var at = 0L
        for (span in spans.sortedWith(compareBy<Triple<Long, Long, String>>({ it.first }, { it.second }))) {
            if (span.first != at) {
                header.obj(span.third).fail("data_offsets", "starts at byte ${span.first}; the data before it ends at $at (tensors must fill the data without gaps or overlaps).")
            }
            at = span.second
        }
        if (at != dataSize.toLong()) {
            throw BundleException(file, "the tensors end at data byte $at, but the file holds $dataSize data bytes: the file is truncated or padded")
        }
        return out
    }
}
