package dev.privrec.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.File

/**
 * Runs against bundles exported and signed by `privrec export` in the same test run
 * (tests/samples/test_android_core.py). Bundle directories come from the system property `privrec.bundles`,
 * or the env var `PRIVREC_BUNDLES` when the property is unset or empty (separated by the platform path
 * separator), and the signing key's public half from `privrec.public_key` / `PRIVREC_PUBLIC_KEY`; without them
 * the tests fail, they do not skip. Unedited bundles load with the pinned key, as an app loads them; a test
 * that edits a manifest on purpose (which breaks the signature) loads it with `allowUnsigned = true`.
 */
class BundleTest {
    @get:Rule
    val tmp = TemporaryFolder()

    private fun bundleDirs(): List<File> = TestInputs.bundleDirs()

    private fun loadSigned(dir: File): Bundle = Bundle.load(dir, TestInputs.publicKey())

    private fun loadUnsigned(dir: File): Bundle = Bundle.load(dir, null, allowUnsigned = true)

    @Test
    fun goldenSelfTestPassesForEveryBundle() {
        for (dir in bundleDirs()) {
            val bundle = loadSigned(dir)
            val results = bundle.selfTest()
            println("${dir.name} (${bundle.manifest.precision}, ${bundle.manifest.numItems} items × ${bundle.manifest.dim}):")
            for (r in results) println("  $r")
            val failed = results.filter { !it.passed }
            assertTrue("golden self-test failed for $dir:\n${failed.joinToString("\n")}", failed.isEmpty())
            assertEquals(setOf("score", "recommend", "finetune"), results.map { it.case.signature }.toSet())
            // Contract tolerances (docs/BUNDLE.md: float32 1e-4, int8 2e-2): no case may claim a looser one.
            val max = Golden.MAX_TOLERANCE.getValue(bundle.manifest.precision)
            assertTrue(results.all { it.case.tolerance <= max })
        }
    }

    /** The self-test must be able to fail: outputs off by 3 × tolerance are caught, per signature. */
    @Test
    fun theSelfTestCatchesWrongOutputs() {
        for (dir in bundleDirs()) {
            val bundle = loadSigned(dir)
            val m = bundle.manifest
            val exact = SelfTest.KotlinSignatures(bundle.recommender, m.topK, m.finetune.steps)
            val delta = 3 * Golden.MAX_TOLERANCE.getValue(m.precision).toFloat()
            val shifted = object : SelfTest.Signatures {
                override fun score(user: FloatArray, itemIds: IntArray): FloatArray {
                    val s = exact.score(user, itemIds)
                    s[s.size - 1] += delta
                    return s
                }

                override fun recommend(user: FloatArray, mask: FloatArray): TopK {
                    // Return the K+1-th item instead of the K-th: the sets differ by a non-tie.
                    val all = bundle.recommender.scoreAll(user)
                    for (i in all.indices) all[i] += mask[i]
                    val top = Recommender.topK(all, m.topK + 1, emptySet())
                    val ids = top.ids.copyOf(m.topK)
                    ids[m.topK - 1] = top.ids[m.topK]
                    return TopK(ids, FloatArray(m.topK) { all[ids[it]] })
                }

                override fun finetune(user: FloatArray, itemIds: IntArray, labels: FloatArray, lr: Float, l2: Float): FinetuneResult {
                    val out = exact.finetune(user, itemIds, labels, lr, l2)
                    return FinetuneResult(out.user, out.loss + delta)
                }
            }
            val results = bundle.selfTest(shifted)
            for (r in results) {
                if (r.case.signature != "recommend") {
                    assertTrue("$dir: a shifted ${r.case.signature} passed: $r", !r.passed)
                }
            }
            // recommend: caught unless the K-th and K+1-th scores happen to tie within tolerance.
            val exactResults = bundle.selfTest(exact)
            assertTrue(exactResults.all { it.passed })
            val recommendCaught = results.filter { it.case.signature == "recommend" }.count { !it.passed }
            assertTrue("$dir: no shifted recommend case was caught", recommendCaught > 0)
        }
    }

    @Test
    fun manifestDescribesTheWeights() {
        for (dir in bundleDirs()) {
            val bundle = loadSigned(dir)
            val m = bundle.manifest
            assertEquals(m.numItems, bundle.table.numItems)
            assertEquals(m.dim, bundle.table.dim)
            // `sparsity` is the measured fraction of zeros in item_embedding (docs/BUNDLE.md).
            val zeros = bundle.table.embedding.count { it == 0f }
            assertEquals("sparsity of $dir", m.sparsity, zeros.toDouble() / bundle.table.embedding.size, 1e-3)
            // The catalog is empty (no metadata) or one entry per row, in row order.
            assertTrue(m.items.isEmpty() || m.items.size == m.numItems)
            m.items.forEachIndexed { pos, item -> assertEquals(pos, item.index) }
            if (m.items.isEmpty()) assertEquals("#0", m.title(0)) else assertEquals(m.items[0].title.ifEmpty { "#0" }, m.title(0))
            assertTrue(m.modelVersion.isNotEmpty())
            assertEquals(m.precision, bundle.golden.precision)
        }
    }

    @Test
    fun recommendationsNeverContainSeenItems() {
        for (dir in bundleDirs()) {
            val bundle = loadSigned(dir)
            val user = bundle.golden.cases.first { it.signature == "recommend" }.inputs.floats("user")
            val first = bundle.recommender.recommend(user, bundle.manifest.topK, emptySet())
            val seen = first.ids.take(3).toSet()
            val second = bundle.recommender.recommend(user, bundle.manifest.topK, seen)
            assertTrue(second.ids.none { it in seen })
            // The items after the excluded ones move up, in order.
            assertEquals(first.ids.drop(3), second.ids.take(first.ids.size - 3))
        }
    }

    private fun copyOf(dir: File): File {
        val copy = tmp.newFolder(dir.name)
        dir.copyRecursively(copy, overwrite = true)
        return copy
    }

    /** [dir] is refused naming [file]; loaded with the pinned key, or without any key when [signed] is false. */
    private fun assertRefused(dir: File, file: String, fragment: String, signed: Boolean = true) =
        assertRefused(file, fragment) { if (signed) loadSigned(dir) else loadUnsigned(dir) }

    @Test
    fun aFlippedByteInTheWeightsIsRefusedNamingTheFile() {
        val dir = copyOf(bundleDirs().first())
        val f = File(dir, WeightsFile.FILE)
        val bytes = f.readBytes()
        bytes[bytes.size / 2] = (bytes[bytes.size / 2].toInt() xor 0x01).toByte()
        f.writeBytes(bytes)
        assertRefused(dir, "weights.safetensors", "sha256")
    }

    @Test
    fun anEditedGoldenFileIsRefused() {
        val dir = copyOf(bundleDirs().first())
        File(dir, Golden.FILE).appendText(" ")
        assertRefused(dir, "golden.json", "size")
    }

    @Test
    fun aMissingListedFileIsRefused() {
        val dir = copyOf(bundleDirs().first())
        assertTrue(File(dir, Golden.FILE).delete())
        assertRefused(dir, "golden.json", "missing")
    }

    @Test
    fun schemaChangesAreRefusedNamingTheField() {
        val base = bundleDirs().first()
        val newer = copyOf(base)
        editManifest(newer) { it["schema_version"] = 2 }
        assertRefused(newer, "manifest.sig", "does not verify manifest.json")  // an app never gets past the signature
        assertRefused(newer, "manifest.json", "schema_version", signed = false)

        val extra = tmp.newFolder("extra")
        base.copyRecursively(extra, overwrite = true)
        editManifest(extra) { it["new_field"] = 1 }
        assertRefused(extra, "manifest.json", "unexpected [new_field]", signed = false)

        val renamed = tmp.newFolder("renamed")
        base.copyRecursively(renamed, overwrite = true)
        editManifest(renamed) {
            @Suppress("UNCHECKED_CAST")
            val sigs = it["signatures"] as MutableMap<String, Any?>
            sigs["rank"] = sigs.remove("recommend")
        }
        assertRefused(renamed, "manifest.json", "signatures.recommend", signed = false)

        val escaping = tmp.newFolder("escaping")
        base.copyRecursively(escaping, overwrite = true)
        editManifest(escaping) {
            @Suppress("UNCHECKED_CAST")
            val files = it["files"] as MutableMap<String, Any?>
            files["../outside.bin"] = mapOf("sha256" to "0".repeat(64), "size" to 0)
        }
        assertRefused(escaping, "manifest.json", "not a plain relative path", signed = false)
    }

    @Test
    fun finetuneCallsAndHalfLifeAreOptionalInTheManifest() {
        val base = bundleDirs().first()
        val bare = copyOf(base)
        editManifest(bare) {
            @Suppress("UNCHECKED_CAST")
            val ft = it["finetune"] as MutableMap<String, Any?>
            ft.remove("calls")
            ft.remove("recency_half_life")
        }
        val spec = loadUnsigned(bare).manifest.finetune
        assertEquals(1, spec.calls)
        assertEquals(null, spec.recencyHalfLife)

        val withHalfLife = tmp.newFolder("half-life")
        base.copyRecursively(withHalfLife, overwrite = true)
        editManifest(withHalfLife) {
            @Suppress("UNCHECKED_CAST")
            val ft = it["finetune"] as MutableMap<String, Any?>
            ft["calls"] = 7
            ft["recency_half_life"] = 2.5
        }
        val read = loadUnsigned(withHalfLife).manifest.finetune
        assertEquals(7, read.calls)
        assertEquals(2.5, read.recencyHalfLife!!, 0.0)

        val zeroCalls = tmp.newFolder("zero-calls")
        base.copyRecursively(zeroCalls, overwrite = true)
        editManifest(zeroCalls) {
            @Suppress("UNCHECKED_CAST")
            (it["finetune"] as MutableMap<String, Any?>)["calls"] = 0
        }
        assertRefused(zeroCalls, "manifest.json", "field \"finetune.calls\" must be in [1, 1000]. Found 0.", signed = false)

        val negativeHalfLife = tmp.newFolder("negative-half-life")
        base.copyRecursively(negativeHalfLife, overwrite = true)
        editManifest(negativeHalfLife) {
            @Suppress("UNCHECKED_CAST")
            (it["finetune"] as MutableMap<String, Any?>)["recency_half_life"] = -1.0
        }
        assertRefused(negativeHalfLife, "manifest.json", "field \"finetune.recency_half_life\" must be null or a number > 0", signed = false)
    }

    @Test
    fun theInteractionLogRoundTrips() {
        val m = loadSigned(bundleDirs().first()).manifest
        val log = InteractionLog.empty(m.modelVersion, m.dim)
            .with(Interaction(m.itemMap.id(3), 1f, 1700000000000L))
            .with(Interaction(m.itemMap.id(m.numItems - 1), 1f, 1700000000001L))
            .with(Interaction("not-in-this-catalog", 0.5f, 1700000000002L))
            .withUser(FloatArray(m.dim) { it * 0.25f - 1f })
        val back = InteractionLog.decode(log.encode())
        assertEquals(log.modelVersion, back.modelVersion)
        assertEquals(log.interactions, back.interactions)
        assertEquals(log.user.toList(), back.user.toList())
        assertEquals(setOf(3, m.numItems - 1), back.seen(m.itemMap))
        assertEquals(listOf("not-in-this-catalog"), back.history(m.itemMap).dropped)
    }
}
