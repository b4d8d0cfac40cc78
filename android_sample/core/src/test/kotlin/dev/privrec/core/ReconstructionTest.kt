package dev.privrec.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.File
import java.util.Locale

/**
 * The reconstruction recipe against tests/golden/reconstruction_recipe.json, the fixture every client must
 * reproduce (a 12-item × 4-dim model, its `finetune` block, and cases {name, history, labels, user}).
 * Its path comes from the system property `privrec.recipe_golden`, or the env var `PRIVREC_RECIPE_GOLDEN`
 * when the property is unset or empty; without either the tests fail, they do not skip.
 */
class ReconstructionTest {
    private class Case(val name: String, val history: IntArray, val labels: FloatArray, val user: FloatArray)

    private class Fixture(val table: ItemTable, val spec: FinetuneSpec, val tolerance: Double, val cases: List<Case>) {
        val kotlinMath: SelfTest.Signatures get() = SelfTest.KotlinSignatures(Recommender(table), 1, spec.steps)
    }

    private fun fixture(): Fixture {
        val file = File(TestInputs.value("privrec.recipe_golden", "PRIVREC_RECIPE_GOLDEN", "tests/golden/reconstruction_recipe.json"))
        val root = JsonFields.parse(file.readText(Charsets.UTF_8), file.name)
        val n = root.int("num_items")
        val d = root.int("dim")
        val rows = root.list("item_embedding")
        assertEquals("item_embedding rows", n, rows.size)
        val embedding = FloatArray(n * d)
        for (i in 0 until n) {
            val row = rows[i] as? List<*> ?: throw AssertionError("item_embedding[$i] is not a list")
            assertEquals("item_embedding[$i] length", d, row.size)
            for (j in 0 until d) embedding[i * d + j] = (row[j] as Number).toFloat()
        }
        val ft = root.obj("finetune")
        val halfLife = if (ft.raw("recency_half_life") == null) null else ft.double("recency_half_life")
        val spec = FinetuneSpec(ft.int("steps"), ft.double("lr"), ft.double("l2"), ft.int("calls"), halfLife)
        val cases = root.objects("cases").map { Case(it.string("name"), it.ints("history"), it.floats("labels"), it.floats("user")) }
        assertTrue("the fixture holds no case", cases.isNotEmpty())
        return Fixture(ItemTable(n, d, embedding, root.floats("item_bias")), spec, root.double("tolerance"), cases)
    }

    private fun maxAbs(a: FloatArray, b: FloatArray): Double {
        assertEquals(b.size, a.size)
        var m = 0.0
        for (i in a.indices) m = Math.max(m, Math.abs(a[i].toDouble() - b[i].toDouble()))
        return m
    }

    @Test
    fun everyGoldenCaseIsReproducedWithTheKotlinMath() {
        val fx = fixture()
        for (c in fx.cases) {
            val labels = Reconstruction.labels(c.history, fx.table.numItems, fx.spec.recencyHalfLife)
            val labelErr = maxAbs(labels, c.labels)
            val user = Reconstruction.fit(fx.kotlinMath, labels, fx.table.dim, fx.spec).user
            val userErr = maxAbs(user, c.user)
            val ok = labelErr <= fx.tolerance && userErr <= fx.tolerance
            println("reconstruction_recipe.json cases[${c.name}]: labels max |err| = ${"%.3g".format(Locale.ROOT, labelErr)}, " +
                "user max |err| = ${"%.3g".format(Locale.ROOT, userErr)} (tolerance ${fx.tolerance}) ${if (ok) "ok" else "FAILED"}")
            assertTrue("${c.name}: labels ${labels.toList()} differ from ${c.labels.toList()} by $labelErr", labelErr <= fx.tolerance)
            assertTrue("${c.name}: user ${user.toList()} differs from ${c.user.toList()} by $userErr", userErr <= fx.tolerance)
        }
    }

    /** Like 3, 7, 3, 1, 9 then unlike 7: the log's history is the fixture's `after_unlike_7` case. */
    @Test
    fun anUnlikeRemovesEveryInteractionWithTheItem() {
        val fx = fixture()
        val first = fx.cases.first { it.name == "history" }
        val afterUnlike = fx.cases.first { it.name == "after_unlike_7" }
        val map = ItemMap.implicit(fx.table.numItems)
        var log = InteractionLog.empty("test", fx.table.dim)
        for ((t, item) in first.history.withIndex()) log = log.with(Interaction(map.id(item), 1f, 1700000000000L + t))
        assertArrayEquals(first.history, log.history(map).rows)
        log = log.without(map.id(7))
        assertArrayEquals(afterUnlike.history, log.history(map).rows)
        val rebuilt = Reconstruction.labels(log.history(map).rows, fx.table.numItems, fx.spec.recencyHalfLife, log.weights())
        assertTrue(maxAbs(rebuilt, afterUnlike.labels) <= fx.tolerance)
    }

    @Test
    fun labelsWithoutAHalfLifeAreTheLargestWeightOfEachItem() {
        val labels = Reconstruction.labels(intArrayOf(2, 0, 2), 4, null, floatArrayOf(0.5f, 1f, 0.25f))
        assertArrayEquals(floatArrayOf(1f, 0f, 0.5f, 0f), labels, 0f)
        assertArrayEquals(floatArrayOf(0f, 1f, 0f), Reconstruction.labels(intArrayOf(1, 1), 3, null), 0f)
    }

    @Test
    fun weightsMultiplyTheRecencyDecay() {
        // Positions 0, 1, 2 were 2, 1, 0 interactions before the latest; half-life 1.
        val labels = Reconstruction.labels(intArrayOf(0, 1, 2), 3, 1.0, floatArrayOf(2f, 2f, 0.5f))
        assertArrayEquals(floatArrayOf(0.5f, 1f, 0.5f), labels, 1e-7f)
    }

    private fun assertRefused(fragment: String, block: () -> Unit) {
        try {
            block()
            fail("expected an IllegalArgumentException mentioning <$fragment>")
        } catch (e: IllegalArgumentException) {
            assertTrue("message <${e.message}> lacks <$fragment>", e.message!!.contains(fragment))
        }
    }

    @Test
    fun badHistoriesAreRefusedWithTheReason() {
        assertRefused("`history` must hold at least one item") { Reconstruction.labels(IntArray(0), 5, 2.0) }
        assertRefused("`history` must be in [0, 5). Found 5 at position 1.") { Reconstruction.labels(intArrayOf(0, 5), 5, 2.0) }
        assertRefused("`history` must be in [0, 5). Found -1 at position 0.") { Reconstruction.labels(intArrayOf(-1), 5, null) }
        assertRefused("`weights` must have one weight per history item (2). Found 1.") {
            Reconstruction.labels(intArrayOf(0, 1), 5, null, floatArrayOf(1f))
        }
        assertRefused("`weights` must be finite and >= 0. Found -1.0 at position 1.") {
            Reconstruction.labels(intArrayOf(0, 1), 5, null, floatArrayOf(1f, -1f))
        }
        assertRefused("`weights` must be finite and >= 0. Found NaN at position 0.") {
            Reconstruction.labels(intArrayOf(0), 5, null, floatArrayOf(Float.NaN))
        }
        assertRefused("labels are all zero") { Reconstruction.labels(intArrayOf(0, 1), 5, null, floatArrayOf(0f, 0f)) }
        assertRefused("`recencyHalfLife` must be null or a finite number > 0. Found 0.0.") { Reconstruction.labels(intArrayOf(0), 5, 0.0) }
    }

    /** A backend that records its calls and returns user + 1 (so the chain of calls is visible). */
    private class Recording(val dim: Int) : SelfTest.Signatures {
        val users = ArrayList<FloatArray>()
        val candidates = ArrayList<IntArray>()
        val rates = ArrayList<Pair<Float, Float>>()

        override fun score(user: FloatArray, itemIds: IntArray): FloatArray = throw UnsupportedOperationException()
        override fun recommend(user: FloatArray, mask: FloatArray): TopK = throw UnsupportedOperationException()
        override fun finetune(user: FloatArray, itemIds: IntArray, labels: FloatArray, lr: Float, l2: Float): FinetuneResult {
            users.add(user.copyOf())
            candidates.add(itemIds.copyOf())
            rates.add(Pair(lr, l2))
            return FinetuneResult(FloatArray(dim) { user[it] + 1f }, users.size.toDouble())
        }
    }

    @Test
    fun fitMakesCallsCallsFromZerosOverTheWholeCatalog() {
        val backend = Recording(3)
        val out = Reconstruction.fit(backend, floatArrayOf(0f, 1f, 0f, 0f, 0f), 3, FinetuneSpec(5, 0.25, 0.5, 4, 2.0))
        assertEquals(4, backend.users.size)
        assertArrayEquals(FloatArray(3), backend.users[0], 0f) // the first call starts from zeros, not a stored vector
        for (ids in backend.candidates) assertArrayEquals(intArrayOf(0, 1, 2, 3, 4), ids)
        for (r in backend.rates) assertEquals(Pair(0.25f, 0.5f), r)
        assertArrayEquals(floatArrayOf(4f, 4f, 4f), out.user, 0f)
        assertEquals(4.0, out.loss, 0.0)
    }

    @Test
    fun aBackendReturningTheWrongLengthIsCaught() {
        val short = object : SelfTest.Signatures {
            override fun score(user: FloatArray, itemIds: IntArray): FloatArray = throw UnsupportedOperationException()
            override fun recommend(user: FloatArray, mask: FloatArray): TopK = throw UnsupportedOperationException()
            override fun finetune(user: FloatArray, itemIds: IntArray, labels: FloatArray, lr: Float, l2: Float) = FinetuneResult(FloatArray(2), 0.0)
        }
        try {
            Reconstruction.fit(short, floatArrayOf(1f), 3, FinetuneSpec(1, 0.1, 0.0))
            fail("expected an IllegalStateException")
        } catch (e: IllegalStateException) {
            assertEquals("finetune call 0 returned 2 values; the user vector has 3.", e.message)
        }
    }
}
