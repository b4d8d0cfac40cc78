package dev.privrec.core

import java.util.PriorityQueue

/** Top-K result: model rows [ids] and their [scores], highest first. */
class TopK(val ids: IntArray, val scores: FloatArray)

/** Result of the fine-tune: the new user vector and the loss evaluated at it. */
class FinetuneResult(val user: FloatArray, val loss: Double)

/**
 * The three signatures (docs/BUNDLE.md) as plain Kotlin math over an [ItemTable], for devices without the
 * model and as the check of the LiteRT / Core ML outputs. Sums run in double and round to float32 at the
 * end, so results agree with the numpy reference well inside the 1e-4 float32 tolerance.
 */
class Recommender(val table: ItemTable) {
    private val n = table.numItems
    private val d = table.dim

    private fun checkUser(user: FloatArray) {
        require(user.size == d) { "`user` must have $d values. Found ${user.size}." }
    }

    private fun checkIds(ids: IntArray, name: String) {
        for (i in ids.indices) {
            require(ids[i] in 0 until n) { "`$name` must be in [0, $n). Found ${ids[i]} at position $i." }
        }
    }

    private fun dot(row: Int, user: FloatArray): Double {
        var acc = 0.0
        val base = row * d
        for (j in 0 until d) acc += table.embedding[base + j].toDouble() * user[j]
        return acc + table.bias[row]
    }

    /** `score`: `scores[j] = V[itemIds[j]] · user + b[itemIds[j]]`. */
    fun score(user: FloatArray, itemIds: IntArray): FloatArray {
        checkUser(user)
        checkIds(itemIds, "item_ids")
        return FloatArray(itemIds.size) { dot(itemIds[it], user).toFloat() }
    }

    /** Scores of the whole catalog, `V · user + b`. */
    fun scoreAll(user: FloatArray): FloatArray {
        checkUser(user)
        return FloatArray(n) { dot(it, user).toFloat() }
    }

    /** `recommend`: the [k] best items for [user], never one in [exclude] (the user's seen items). */
    fun recommend(user: FloatArray, k: Int, exclude: Set<Int>): TopK {
        checkIds(exclude.toIntArray(), "exclude")
        return topK(scoreAll(user), k, exclude)
    }

    /**
     * `finetune`: [steps] gradient steps on the user vector with the item table frozen (Singhal et al. 2021,
     * "Federated Reconstruction", §3):
     * ```
     * s = V[ids] · u + b[ids];  p = softmax(s);  y = labels / max(sum(labels), 1e-12)
     * u = u - lr * (V[ids]^T (p - y) + l2 * u)
     * ```
     * and `loss = -sum(y * log_softmax(s)) + l2/2 * |u|^2` at the returned `u`.
     */
    fun finetune(user: FloatArray, itemIds: IntArray, labels: FloatArray, lr: Double, l2: Double, steps: Int): FinetuneResult {
        checkUser(user)
        checkIds(itemIds, "item_ids")
        require(labels.size == itemIds.size) { "`labels` must have ${itemIds.size} values. Found ${labels.size}." }
        require(itemIds.isNotEmpty()) { "`item_ids` must hold at least one item." }
        require(steps > 0) { "`steps` must be > 0. Found $steps." }
        val m = itemIds.size
        var labelSum = 0.0
        for (v in labels) labelSum += v
        val denom = Math.max(labelSum, LABEL_SUM_FLOOR)
        val y = DoubleArray(m) { labels[it] / denom }
        val u = DoubleArray(d) { user[it].toDouble() }
        val s = DoubleArray(m)
        val p = DoubleArray(m)
        repeat(steps) {
            scores(itemIds, u, s)
            softmax(s, p)
            val grad = DoubleArray(d) { l2 * u[it] }
            for (r in 0 until m) {
                val g = p[r] - y[r]
                val base = itemIds[r] * d
                for (j in 0 until d) grad[j] += table.embedding[base + j] * g
            }
            for (j in 0 until d) u[j] -= lr * grad[j]
        }
        scores(itemIds, u, s)
        var max = Double.NEGATIVE_INFINITY
        for (v in s) if (v > max) max = v
        var z = 0.0
        for (v in s) z += Math.exp(v - max)
        val logZ = max + Math.log(z)
        var ce = 0.0
        for (r in 0 until m) ce -= y[r] * (s[r] - logZ)
        var norm2 = 0.0
        for (v in u) norm2 += v * v
        return FinetuneResult(FloatArray(d) { u[it].toFloat() }, ce + 0.5 * l2 * norm2)
    }

    private fun scores(ids: IntArray, u: DoubleArray, out: DoubleArray) {
        for (r in ids.indices) {
            val base = ids[r] * d
            var acc = table.bias[ids[r]].toDouble()
            for (j in 0 until d) acc += table.embedding[base + j] * u[j]
            out[r] = acc
        }
    }

    private fun softmax(s: DoubleArray, out: DoubleArray) {
        var max = Double.NEGATIVE_INFINITY
        for (v in s) if (v > max) max = v
        var z = 0.0
        for (i in s.indices) {
            out[i] = Math.exp(s[i] - max)
            z += out[i]
        }
        for (i in out.indices) out[i] /= z
    }

    companion object {
        const val LABEL_SUM_FLOOR = 1e-12

        /**
         * The [k] highest of [scores], highest first, skipping indices in [exclude] and NaN scores; ties go
         * to the lower index (the rule of the Python reference). A bounded heap: O(n log k).
         * Returns fewer than [k] when fewer items are eligible.
         */
        fun topK(scores: FloatArray, k: Int, exclude: Set<Int>): TopK {
            require(k > 0) { "`k` must be > 0. Found $k." }
            // The heap's head is the worst kept item: lowest score, then highest index.
            val worstFirst = Comparator<Int> { a, b ->
                val c = scores[a].compareTo(scores[b])
                if (c != 0) c else b.compareTo(a)
            }
            val heap = PriorityQueue<Int>(k + 1, worstFirst)
            for (i in scores.indices) {
                if (i in exclude || scores[i].isNaN() || scores[i] == Float.NEGATIVE_INFINITY) continue
                if (heap.size < k) {
                    heap.add(i)
                } else if (worstFirst.compare(i, heap.peek()) > 0) {
                    heap.poll()
                    heap.add(i)
                }
            }
            val ids = IntArray(heap.size)
            for (pos in ids.indices.reversed()) ids[pos] = heap.poll()
            return TopK(ids, FloatArray(ids.size) { scores[ids[it]] })
        }
    }
}
