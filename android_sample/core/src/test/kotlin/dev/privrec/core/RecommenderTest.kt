package dev.privrec.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class RecommenderTest {
    // 4 items, dim 2: V = [[1,0],[0,1],[1,1],[-1,0]], b = [0, 0.5, -1, 0]
    private val table = ItemTable(4, 2, floatArrayOf(1f, 0f, 0f, 1f, 1f, 1f, -1f, 0f), floatArrayOf(0f, 0.5f, -1f, 0f))
    private val rec = Recommender(table)

    @Test
    fun scoreIsDotPlusBias() {
        assertArrayEquals(floatArrayOf(2f, 3.5f, 4f, -2f), rec.scoreAll(floatArrayOf(2f, 3f)), 0f)
        assertArrayEquals(floatArrayOf(-2f, 2f), rec.score(floatArrayOf(2f, 3f), intArrayOf(3, 0)), 0f)
    }

    @Test(expected = IllegalArgumentException::class)
    fun scoreRefusesOutOfRangeIds() {
        rec.score(floatArrayOf(1f, 1f), intArrayOf(0, 4))
    }

    @Test
    fun topKIsHighestFirstWithLowerIndexWinningTies() {
        val scores = floatArrayOf(1f, 3f, 3f, 2f, 3f, Float.NaN, 0f)
        val top = Recommender.topK(scores, 4, emptySet())
        assertArrayEquals(intArrayOf(1, 2, 4, 3), top.ids)
        assertArrayEquals(floatArrayOf(3f, 3f, 3f, 2f), top.scores, 0f)
    }

    @Test
    fun topKSkipsExcludedAndMaskedItems() {
        val scores = floatArrayOf(5f, 4f, Float.NEGATIVE_INFINITY, 3f, 2f)
        val top = Recommender.topK(scores, 3, setOf(0))
        assertArrayEquals(intArrayOf(1, 3, 4), top.ids)
        // Fewer eligible items than k: return what there is.
        assertArrayEquals(intArrayOf(1, 3, 4), Recommender.topK(scores, 10, setOf(0)).ids)
    }

    @Test
    fun topKMatchesAFullSortOnRandomScores() {
        val rnd = java.util.Random(7)
        repeat(50) {
            val n = 1 + rnd.nextInt(200)
            // Few distinct values, so ties are common.
            val scores = FloatArray(n) { rnd.nextInt(20).toFloat() }
            val exclude = (0 until n).filter { rnd.nextInt(5) == 0 }.toSet()
            val k = 1 + rnd.nextInt(15)
            val expected = (0 until n).filter { it !in exclude }
                .sortedWith(Comparator<Int> { a, b -> if (scores[a] != scores[b]) scores[b].compareTo(scores[a]) else a.compareTo(b) })
                .take(k)
            assertEquals(expected, Recommender.topK(scores, k, exclude).ids.toList())
        }
    }

    @Test
    fun recommendExcludesSeenItems() {
        val top = rec.recommend(floatArrayOf(2f, 3f), 2, setOf(2))
        assertArrayEquals(intArrayOf(1, 0), top.ids)
    }

    @Test
    fun finetuneOneStepMatchesTheClosedForm() {
        // Two candidates, u = 0: s = b[ids] = [0, 0.5]; p = softmax(s); y = [1, 0].
        val ids = intArrayOf(0, 1)
        val p1 = Math.exp(0.5) / (1 + Math.exp(0.5))
        val p0 = 1 - p1
        val lr = 0.5
        // grad = V0*(p0-1) + V1*p1 = [p0-1, p1]; l2 term is zero at u = 0.
        val u = doubleArrayOf(-lr * (p0 - 1), -lr * p1)
        val s0 = u[0]
        val s1 = u[1] + 0.5
        val logZ = Math.log(Math.exp(s0) + Math.exp(s1))
        val l2 = 0.1
        val loss = -(s0 - logZ) + 0.5 * l2 * (u[0] * u[0] + u[1] * u[1])
        val out = rec.finetune(floatArrayOf(0f, 0f), ids, floatArrayOf(2f, 0f), lr, l2, 1)
        assertArrayEquals(floatArrayOf(u[0].toFloat(), u[1].toFloat()), out.user, 1e-7f)
        assertEquals(loss, out.loss, 1e-7)
    }

    @Test
    fun finetuneLowersTheLossOfLikedItems() {
        val before = rec.finetune(floatArrayOf(0f, 0f), intArrayOf(0, 1, 2, 3), floatArrayOf(0f, 0f, 1f, 0f), 1e-9, 0.0, 1)
        val after = rec.finetune(floatArrayOf(0f, 0f), intArrayOf(0, 1, 2, 3), floatArrayOf(0f, 0f, 1f, 0f), 0.5, 0.001, 20)
        assertEquals(true, after.loss < before.loss)
        assertEquals(2, rec.recommend(after.user, 1, emptySet()).ids[0])
    }

    @Test
    fun dequantizeMultipliesEachRowByItsScale() {
        val q = byteArrayOf(127, -127, 0, 64)
        val v = ItemTable.dequantize(q, floatArrayOf(0.5f, 0.25f), 2)
        assertArrayEquals(floatArrayOf(63.5f, -63.5f, 0f, 16f), v, 0f)
    }
}
