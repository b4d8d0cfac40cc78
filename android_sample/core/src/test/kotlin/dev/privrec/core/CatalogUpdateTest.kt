package dev.privrec.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.File
import java.util.Locale

/**
 * A catalog update on the device: the history is stored by item id, so after the app installs bundle v2
 * (items added, removed and re-ordered since v1) the rebuilt user vector and recommendations equal those of
 * a device that started on v2 with the same surviving history.
 *
 * The fixture (`privrec.catalog` / `PRIVREC_CATALOG`, written by tests/samples/test_android_core.py) names
 * two signed bundles `v1` and `v2` of one model with different catalogs, a history of v1 item ids with
 * weights, the ids v2 removed, the history as v1 rows (the earlier store format), and the top ids and scores
 * the Python runtime recommends on v2 for the surviving history.
 */
class CatalogUpdateTest {
    @get:Rule
    val tmp = TemporaryFolder()

    private class Fixture(
        val v1: Bundle,
        val v2: Bundle,
        val history: List<String>,
        val weights: FloatArray,
        val dropped: List<String>,
        val v1Rows: IntArray,
        val pythonTopIds: List<String>,
        val pythonTopScores: FloatArray,
        val tolerance: Double
    )

    private fun fixture(): Fixture {
        val path = TestInputs.value("privrec.catalog", "PRIVREC_CATALOG", "the catalog-update fixture (catalog_update.json)")
        val root = JsonFields.parse(File(path).readText(), "catalog_update.json")
        val key = TestInputs.publicKey()
        fun strings(k: String): List<String> = root.list(k).mapIndexed { i, v -> v as? String ?: root.fail("$k[$i]", "must be a string") }
        return Fixture(
            Bundle.load(File(root.string("v1")), key), Bundle.load(File(root.string("v2")), key),
            strings("history"), root.floats("weights"), strings("dropped"), root.ints("v1_rows"),
            strings("python_top_ids"), root.floats("python_top_scores"), root.double("tolerance")
        )
    }

    private fun signatures(b: Bundle): SelfTest.Signatures = SelfTest.KotlinSignatures(b.recommender, b.manifest.topK, b.manifest.finetune.steps)

    /** What the app shows after (re)building [log] on [b]: the user vector and the top ids and scores, seen items excluded. */
    private class Served(val user: FloatArray, val ids: List<String>, val scores: FloatArray, val dropped: List<String>)

    private fun serve(b: Bundle, log: InteractionLog): Served {
        val backend = signatures(b)
        val (result, mapped) = Reconstruction.reconstruct(backend, b.manifest, log)
        val user = result?.user ?: FloatArray(b.manifest.dim)
        val mask = FloatArray(b.manifest.numItems)
        for (row in log.seen(b.manifest.itemMap)) mask[row] = Float.NEGATIVE_INFINITY
        val top = backend.recommend(user, mask)
        return Served(user, top.ids.map { b.manifest.itemMap.id(it) }, top.scores, mapped.dropped)
    }

    private fun logOf(b: Bundle, ids: List<String>, weights: FloatArray): InteractionLog {
        var log = InteractionLog.empty(b.manifest.modelVersion, b.manifest.dim)
        for ((t, id) in ids.withIndex()) log = log.with(Interaction(id, weights[t], 1700000000000L + t))
        return log
    }

    @Test
    fun aCatalogUpdateRebuildsWhatADeviceThatStartedOnV2Gets() {
        val fx = fixture()
        assertTrue("the history is recorded on v1's catalog", fx.history.all { fx.v1.manifest.itemMap.row(it) != null })
        val onV1 = logOf(fx.v1, fx.history, fx.weights)
        val sealed = onV1.withUser(serve(fx.v1, onV1).user).encode() // what the store keeps

        // The app installs v2: the stored log is read back and rebuilt on the new bundle.
        val updated = InteractionLog.decode(sealed).forModel(fx.v2.manifest.modelVersion, fx.v2.manifest.dim)
        assertEquals(fx.history, updated.historyIds())
        val got = serve(fx.v2, updated)
        assertEquals(fx.dropped, got.dropped)

        // A device that started on v2 with the surviving history.
        val survivors = fx.history.indices.filter { fx.history[it] !in fx.dropped }
        val fresh = serve(fx.v2, logOf(fx.v2, survivors.map { fx.history[it] }, FloatArray(survivors.size) { fx.weights[survivors[it]] }))
        assertArrayEquals(fresh.user, got.user, 0f)
        assertEquals(fresh.ids, got.ids)
        assertArrayEquals(fresh.scores, got.scores, 0f)
        assertTrue(got.ids.none { it in fx.history })

        // ... and what the Python runtime recommends on v2 for that history (ids equal up to ties at the K-th score).
        val kth = fx.pythonTopScores.last() - fx.tolerance
        val python = fx.pythonTopIds.zip(fx.pythonTopScores.toList()).toMap()
        val kotlin = got.ids.zip(got.scores.toList()).toMap()
        for ((id, s) in kotlin) assertTrue("$id (score $s) is not in Python's top ${python.keys}", id in python || s >= kth)
        for ((id, s) in python) assertTrue("Python's $id (score $s) is not in Kotlin's top ${kotlin.keys}", id in kotlin || s >= kth)
        var maxErr = 0.0
        for ((id, s) in kotlin) python[id]?.let { maxErr = Math.max(maxErr, Math.abs(it - s).toDouble()) }
        assertTrue("scores differ from Python's by $maxErr", maxErr <= fx.tolerance)
        println("catalog update: ${got.dropped.size} of ${fx.history.size} stored interactions name items v2 removed; " +
            "top-${got.ids.size} equals a device that started on v2 and the Python runtime's " +
            "(max |score err| ${"%.3g".format(Locale.ROOT, maxErr)})")
    }

    @Test
    fun aLogOfModelRowsIsConvertedThroughTheBundleItWasWrittenWith() {
        val fx = fixture()
        val m = fx.v1.manifest
        val rows = fx.v1Rows.toList() + m.numItems // one row outside v1's catalog: dropped
        val items = rows.mapIndexed { t, r -> linkedMapOf<String, Any?>("item" to r.toLong(), "label" to 1.0, "time_ms" to 1700000000000L + t) }
        val doc = linkedMapOf<String, Any?>("version" to 1L, "model_version" to m.modelVersion, "user" to List(m.dim) { 0.0 }, "interactions" to items)
        val bytes = Json.write(doc).toByteArray(Charsets.UTF_8)
        assertEquals(fx.history, InteractionLog.decode(bytes, m).historyIds())
        for (other in listOf(null, fx.v2.manifest)) { // rows of v1 read with another catalog would name other items
            try {
                InteractionLog.decode(bytes, other)
                fail("a log of rows was read without the bundle those rows index")
            } catch (e: BundleException) {
                assertTrue(e.message!!, e.message!!.contains("pass the manifest of the bundle those rows index"))
            }
        }
    }

    @Test
    fun aStoredLogWhoseIdsAreNotStringsIsRefused() {
        fun doc(id: Any?): ByteArray = Json.write(linkedMapOf<String, Any?>(
            "version" to 2L, "model_version" to "m", "user" to listOf(0.0),
            "interactions" to listOf(linkedMapOf<String, Any?>("item_id" to id, "label" to 1.0, "time_ms" to 1L))
        )).toByteArray(Charsets.UTF_8)
        for ((id, fragment) in listOf(
            3L to "field \"interactions[0].item_id\" must be a string. Found 3.",
            null to "field \"interactions[0].item_id\" must be a string. Found null.",
            "" to "field \"interactions[0].item_id\" must be a non-empty item id."
        )) {
            try {
                InteractionLog.decode(doc(id))
                fail("a stored item id $id was accepted")
            } catch (e: BundleException) {
                assertEquals("interaction store", e.file)
                assertTrue("<${e.message}> lacks <$fragment>", e.message!!.contains(fragment))
            }
        }
    }

    @Test
    fun aTamperedItemMapIsRefusedNamingTheProblem() {
        val fx = fixture()
        @Suppress("UNCHECKED_CAST")
        fun entries(doc: MutableMap<String, Any?>): List<MutableMap<String, Any?>> = doc["items"] as List<MutableMap<String, Any?>>
        val n = fx.v2.manifest.numItems
        val cases = listOf<Pair<(MutableMap<String, Any?>) -> Unit, String>>(
            Pair({ d -> entries(d)[7]["id"] = entries(d)[3]["id"] }, "field \"items[7].id\" repeats id \"${rawIds(fx)[3]}\" of items[3]: item ids must be unique."),
            Pair({ d -> entries(d)[9]["index"] = entries(d)[4]["index"] }, "field \"items[9].index\" repeats index"),
            Pair({ d -> entries(d)[5]["index"] = n.toLong() }, "field \"items[5].index\" must be in [0, $n). Found $n."),
            Pair({ d -> entries(d)[6]["id"] = 6L }, "field \"items[6].id\" must be a string. Found 6."),
            Pair({ d -> entries(d)[6]["id"] = "" }, "field \"items[6].id\" must be a non-empty string")
        )
        for ((i, case) in cases.withIndex()) {
            val dir = tmp.newFolder("tampered-$i")
            fx.v2.dir.copyRecursively(dir, overwrite = true)
            editManifest(dir, case.first)
            assertRefused(Manifest.FILE, case.second) { Bundle.load(dir, null, allowUnsigned = true) }
        }
    }

    /** The `id` of each raw `items` entry of v2's manifest.json, in file order. */
    private fun rawIds(fx: Fixture): List<String> {
        val root = JsonFields.parse(File(fx.v2.dir, Manifest.FILE).readText(), Manifest.FILE)
        return root.objects("items").map { it.string("id") }
    }
}
