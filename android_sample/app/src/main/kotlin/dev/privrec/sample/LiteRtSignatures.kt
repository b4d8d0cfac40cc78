package dev.privrec.sample

import dev.privrec.core.Bundle
import dev.privrec.core.FinetuneResult
import dev.privrec.core.SelfTest
import dev.privrec.core.TopK
import org.tensorflow.lite.Interpreter
import java.io.Closeable
import java.io.File
import java.io.RandomAccessFile
import java.nio.channels.FileChannel

/**
 * The bundle's `model.tflite` run by the LiteRT [Interpreter], one call per named signature
 * (`score`, `recommend`, `finetune`; docs/BUNDLE.md). `runSignature` resizes the dynamic `item_ids` /
 * `labels` inputs to the arrays passed in. Not thread-safe: call from one thread (the ViewModel's
 * single-threaded dispatcher).
 */
class LiteRtSignatures(modelFile: File, private val dim: Int, private val topK: Int) : SelfTest.Signatures, Closeable {
    private val interpreter: Interpreter

    init {
        val buffer = RandomAccessFile(modelFile, "r").use { raf ->
            raf.channel.map(FileChannel.MapMode.READ_ONLY, 0, raf.length())
        }
        interpreter = Interpreter(buffer, Interpreter.Options().setNumThreads(2))
        val keys = interpreter.signatureKeys.toSet()
        val missing = listOf("score", "recommend", "finetune").filter { it !in keys }
        require(missing.isEmpty()) { "${modelFile.name} lacks signatures $missing (found $keys)" }
    }

    override fun score(user: FloatArray, itemIds: IntArray): FloatArray {
        if (itemIds.isEmpty()) return FloatArray(0)
        val scores = FloatArray(itemIds.size)
        interpreter.runSignature(mapOf("user" to user, "item_ids" to itemIds), mapOf("scores" to scores), "score")
        return scores
    }

    override fun recommend(user: FloatArray, mask: FloatArray): TopK {
        val ids = IntArray(topK)
        val scores = FloatArray(topK)
        interpreter.runSignature(mapOf("user" to user, "mask" to mask), mapOf("top_ids" to ids, "top_scores" to scores), "recommend")
        return TopK(ids, scores)
    }

    override fun finetune(user: FloatArray, itemIds: IntArray, labels: FloatArray, lr: Float, l2: Float): FinetuneResult {
        val userOut = FloatArray(dim)
        val loss = FloatArray(1)
        interpreter.runSignature(
            mapOf("user" to user, "item_ids" to itemIds, "labels" to labels, "lr" to floatArrayOf(lr), "l2" to floatArrayOf(l2)),
            mapOf("user_out" to userOut, "loss" to loss),
            "finetune"
        )
        return FinetuneResult(userOut, loss[0].toDouble())
    }

    override fun close() = interpreter.close()

    companion object {
        /** LiteRT over the bundle's TFLite artifact, or null when the bundle has none. */
        fun open(bundle: Bundle): LiteRtSignatures? {
            val file = bundle.artifactFile("tflite") ?: return null
            return LiteRtSignatures(file, bundle.manifest.dim, bundle.manifest.topK)
        }
    }
}
