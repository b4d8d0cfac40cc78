package dev.privrec.core

import java.util.Locale

/** One golden case: a signature's [inputs], expected [outputs], and the max absolute error allowed. */
class GoldenCase(val index: Int, val signature: String, val inputs: JsonFields, val outputs: JsonFields, val tolerance: Double)

/**
 * `golden.json` (docs/BUNDLE.md): inputs and the numpy reference's outputs for every signature, the
 * on-device self-test. Parsed strictly: unknown keys, a missing signature or a precision that differs
 * from the manifest raise a [BundleException] naming `golden.json`.
 */
class Golden(val precision: String, val cases: List<GoldenCase>) {
    companion object {
        const val FILE = "golden.json"
        private val INPUT_KEYS = mapOf(
            "score" to setOf("user", "item_ids"),
            "recommend" to setOf("user", "exclude"),
            "finetune" to setOf("user", "item_ids", "labels", "lr", "l2")
        )
        private val OUTPUT_KEYS = mapOf(
            "score" to setOf("scores"),
            "recommend" to setOf("top_ids", "top_scores"),
            "finetune" to setOf("user_out", "loss")
        )

        /** The largest tolerance the contract allows per precision (docs/BUNDLE.md, "golden.json"). */
        val MAX_TOLERANCE = mapOf("float32" to 1e-4, "int8" to 2e-2)
        /** Limits that bound the self-test's work (docs/BUNDLE.md, "Limits"): the writer emits 9 cases, <= 2048 ids each. */
        const val MAX_CASES = 64
        const val MAX_IDS = 2048

        /** [key] of [f] as [min]..[max] ids in `[0, numItems)`. */
        private fun ids(f: JsonFields, key: String, numItems: Int, min: Int, max: Int): IntArray {
            val ids = f.ints(key)
            if (ids.size < min || ids.size > max) f.fail(key, "must hold $min to $max item ids. Found ${ids.size}.")
            for (i in ids.indices) {
                if (ids[i] < 0 || ids[i] >= numItems) f.fail("$key[$i]", "must be an item id in [0, $numItems). Found ${ids[i]}.")
            }
            return ids
        }

        /** [key] of [f] as exactly [size] numbers. */
        private fun sized(f: JsonFields, key: String, size: Int) {
            val n = f.doubles(key).size
            if (n != size) f.fail(key, "must hold $size numbers. Found $n.")
        }

        /** Shapes and id ranges of one case, checked before any case runs (so a bad case is a BundleException, not a crash). */
        private fun checkShapes(sig: String, inputs: JsonFields, outputs: JsonFields, m: Manifest) {
            sized(inputs, "user", m.dim)
            when (sig) {
                "score" -> sized(outputs, "scores", ids(inputs, "item_ids", m.numItems, 1, MAX_IDS).size)
                "recommend" -> {
                    ids(inputs, "exclude", m.numItems, 0, m.numItems - m.topK)
                    ids(outputs, "top_ids", m.numItems, m.topK, m.topK)
                    sized(outputs, "top_scores", m.topK)
                }
                else -> {
                    sized(inputs, "labels", ids(inputs, "item_ids", m.numItems, 1, MAX_IDS).size)
                    sized(outputs, "user_out", m.dim)
                }
            }
        }

        fun parse(text: String, manifest: Manifest): Golden {
            val root = JsonFields.parse(text, FILE)
            val version = root.int("schema_version")
            if (version != Manifest.SCHEMA_VERSION) {
                root.fail("schema_version", "is $version; this reader knows schema version ${Manifest.SCHEMA_VERSION} only.")
            }
            root.requireKeys(setOf("schema_version", "precision", "cases"))
            val precision = root.string("precision")
            if (precision != manifest.precision) {
                root.fail("precision", "is \"$precision\" but manifest.json says \"${manifest.precision}\".")
            }
            val count = root.list("cases").size
            if (count < 1 || count > MAX_CASES) root.fail("cases", "must hold 1 to $MAX_CASES cases. Found $count.")
            val cases = root.objects("cases").mapIndexed { i, c ->
                c.requireKeys(setOf("signature", "inputs", "outputs", "tolerance"))
                val sig = c.string("signature")
                val inKeys = INPUT_KEYS[sig] ?: c.fail("signature", "must be one of ${INPUT_KEYS.keys}. Found \"$sig\".")
                val inputs = c.obj("inputs").also { it.requireKeys(inKeys) }
                val outputs = c.obj("outputs").also { it.requireKeys(OUTPUT_KEYS.getValue(sig)) }
                val tol = c.double("tolerance")
                val max = MAX_TOLERANCE.getValue(precision)
                if (!(tol > 0.0 && tol <= max)) c.fail("tolerance", "must be in (0, $max] for $precision. Found $tol.")
                checkShapes(sig, inputs, outputs, manifest)
                GoldenCase(i, sig, inputs, outputs, tol)
            }
            val missing = INPUT_KEYS.keys - cases.map { it.signature }.toSet()
            if (missing.isNotEmpty()) root.fail("cases", "must cover every signature; none for ${missing.sorted()}.")
            return Golden(precision, cases)
        }
    }
}

/** Outcome of one golden case: the largest absolute error seen and, when it failed, why. */
class CaseResult(val case: GoldenCase, val maxError: Double, val failure: String?) {
    val passed: Boolean get() = failure == null

    override fun toString(): String {
        val status = if (passed) "ok" else "FAILED: $failure"
        return "golden.json cases[${case.index}] ${case.signature}: max |err| = ${"%.3g".format(Locale.ROOT, maxError)} (tolerance ${case.tolerance}) $status"
    }
}

/**
 * Backend-independent self-test: runs every golden case through a [Signatures] implementation (the Kotlin
 * math, or a LiteRT interpreter in the app) and compares with the expected outputs, `recommend` as sets
 * up to ties (an id may differ only if its score is within tolerance of the K-th score).
 */
object SelfTest {
    /** The three signatures, as any backend exposes them. */
    interface Signatures {
        fun score(user: FloatArray, itemIds: IntArray): FloatArray
        /** Top-K with `mask[i]` = -inf for excluded items and 0 otherwise (the artifact signature). */
        fun recommend(user: FloatArray, mask: FloatArray): TopK
        fun finetune(user: FloatArray, itemIds: IntArray, labels: FloatArray, lr: Float, l2: Float): FinetuneResult
    }

    /** Adapts the plain-Kotlin [Recommender] to [Signatures] with the manifest's K and step count. */
    class KotlinSignatures(private val rec: Recommender, private val topK: Int, private val steps: Int) : Signatures {
        override fun score(user: FloatArray, itemIds: IntArray): FloatArray = rec.score(user, itemIds)

        override fun recommend(user: FloatArray, mask: FloatArray): TopK {
            val all = rec.scoreAll(user)
            for (i in all.indices) all[i] += mask[i]
            return Recommender.topK(all, topK, emptySet())
        }

        override fun finetune(user: FloatArray, itemIds: IntArray, labels: FloatArray, lr: Float, l2: Float): FinetuneResult =
            rec.finetune(user, itemIds, labels, lr.toDouble(), l2.toDouble(), steps)
    }

    fun run(golden: Golden, manifest: Manifest, backend: Signatures, reference: Recommender): List<CaseResult> =
        golden.cases.map { runCase(it, manifest, backend, reference) }

    private fun maxAbs(a: FloatArray, b: FloatArray): Double {
        var m = 0.0
        for (i in a.indices) m = Math.max(m, Math.abs(a[i].toDouble() - b[i].toDouble()))
        return m
    }

    private fun runCase(c: GoldenCase, manifest: Manifest, backend: Signatures, reference: Recommender): CaseResult {
        val user = c.inputs.floats("user")
        if (user.size != manifest.dim) c.inputs.fail("user", "must have ${manifest.dim} values. Found ${user.size}.")
        return when (c.signature) {
            "score" -> {
                val expected = c.outputs.floats("scores")
                val got = backend.score(user, c.inputs.ints("item_ids"))
                if (got.size != expected.size) {
                    CaseResult(c, Double.POSITIVE_INFINITY, "expected ${expected.size} scores, got ${got.size}")
                } else {
                    val err = maxAbs(got, expected)
                    CaseResult(c, err, if (err <= c.tolerance) null else "scores differ by $err")
                }
            }
            "recommend" -> {
                val exclude = c.inputs.ints("exclude")
                val mask = FloatArray(manifest.numItems)
                for (i in exclude) {
                    if (i !in 0 until manifest.numItems) c.inputs.fail("exclude", "must be in [0, ${manifest.numItems}). Found $i.")
                    mask[i] = Float.NEGATIVE_INFINITY
                }
                val expIds = c.outputs.ints("top_ids")
                val expScores = c.outputs.floats("top_scores")
                val got = backend.recommend(user, mask)
                compareTopK(c, expIds, expScores, got, reference.scoreAll(user), exclude.toSet())
            }
            "finetune" -> {
                val lr = c.inputs.scalar("lr").toFloat()
                val l2 = c.inputs.scalar("l2").toFloat()
                val expUser = c.outputs.floats("user_out")
                val expLoss = c.outputs.scalar("loss")
                val got = backend.finetune(user, c.inputs.ints("item_ids"), c.inputs.floats("labels"), lr, l2)
                if (got.user.size != expUser.size) {
                    CaseResult(c, Double.POSITIVE_INFINITY, "user_out has ${got.user.size} values, expected ${expUser.size}")
                } else {
                    val errU = maxAbs(got.user, expUser)
                    val errL = Math.abs(got.loss - expLoss)
                    val err = Math.max(errU, errL)
                    val why = when {
                        errU > c.tolerance -> "user_out differs by $errU"
                        errL > c.tolerance -> "loss ${got.loss} differs from $expLoss by $errL"
                        else -> null
                    }
                    CaseResult(c, err, why)
                }
            }
            else -> CaseResult(c, Double.POSITIVE_INFINITY, "unknown signature ${c.signature}")
        }
    }

    /**
     * Sets equal up to ties (docs/BUNDLE.md): every id in one list but not the other must have a reference
     * score within tolerance of the expected K-th score; sorted scores must agree elementwise; and no
     * excluded item may appear.
     */
    private fun compareTopK(c: GoldenCase, expIds: IntArray, expScores: FloatArray, got: TopK, refScores: FloatArray, exclude: Set<Int>): CaseResult {
        if (got.ids.size != expIds.size || expScores.size != expIds.size) {
            return CaseResult(c, Double.POSITIVE_INFINITY, "expected ${expIds.size} ids, got ${got.ids.size}")
        }
        val bad = got.ids.filter { it in exclude }
        if (bad.isNotEmpty()) return CaseResult(c, Double.POSITIVE_INFINITY, "returned excluded items $bad")
        val err = maxAbs(got.scores.sortedArrayDescending(), expScores.sortedArrayDescending())
        if (err > c.tolerance) return CaseResult(c, err, "top_scores differ by $err")
        var kth = Double.POSITIVE_INFINITY
        for (v in expScores) kth = Math.min(kth, v.toDouble())
        val gotSet = got.ids.toSet()
        val expSet = expIds.toSet()
        val differing = (gotSet - expSet) + (expSet - gotSet)
        for (id in differing) {
            if (id !in 0 until refScores.size) return CaseResult(c, err, "top_ids holds $id, outside the catalog")
            val gap = Math.abs(refScores[id].toDouble() - kth)
            if (gap > c.tolerance) {
                return CaseResult(c, err, "top_ids differ in item $id (score ${refScores[id]}, K-th score $kth): not a tie")
            }
        }
        return CaseResult(c, err, null)
    }
}
