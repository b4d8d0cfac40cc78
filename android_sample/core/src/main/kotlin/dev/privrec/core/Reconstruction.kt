package dev.privrec.core

/**
 * The reconstruction recipe: how a device rebuilds its user vector from its history, the way the model it
 * holds was trained and evaluated. The manifest's `finetune` block ([FinetuneSpec]) carries it; the Python
 * SDK (`privrec.sdk.recipe`), the iOS package and this core follow the same two steps, and
 * tests/golden/reconstruction_recipe.json pins their results.
 *
 * 1. [labels]: for a history `h_0 … h_(M-1)` (item rows, oldest first) with weights `w_j` (default 1), the
 *    item at position `j` was `r = M - 1 - j` interactions before the latest; its label is
 *    `w_j * 0.5^(r / recencyHalfLife)` (`w_j` without a half-life). A repeated item keeps its largest
 *    label; items outside the history are 0.
 * 2. [fit]: from `u = 0`, call the `finetune` signature `calls` times with every catalog item as a
 *    candidate, those labels, and the recipe's `lr` and `l2`; each call runs the `steps` gradient steps
 *    baked into the artifact (Singhal et al. 2021, "Federated Reconstruction", §3: the item table stays
 *    frozen while the local vector is fitted).
 *
 * The vector is always rebuilt from the whole history, never nudged from the previous one, so a like, an
 * unlike or an app restart all give the vector the model was evaluated with.
 */
object Reconstruction {
    /**
     * Step 1: the label vector `float32[numItems]` of [history] (item rows, oldest first).
     *
     * @throws IllegalArgumentException for an empty history, a row outside `[0, numItems)`, [weights] of
     *   another length, a negative or non-finite weight, or labels that are all zero.
     */
    fun labels(history: IntArray, numItems: Int, recencyHalfLife: Double?, weights: FloatArray? = null): FloatArray {
        require(numItems > 0) { "`numItems` must be > 0. Found $numItems." }
        require(history.isNotEmpty()) { "`history` must hold at least one item: a device with no interactions has no user vector." }
        for (j in history.indices) {
            require(history[j] in 0 until numItems) { "`history` must be in [0, $numItems). Found ${history[j]} at position $j." }
        }
        if (weights != null) {
            require(weights.size == history.size) {
                "`weights` must have one weight per history item (${history.size}). Found ${weights.size}."
            }
            for (j in weights.indices) {
                val w = weights[j]
                require(!w.isNaN() && !w.isInfinite() && w >= 0f) { "`weights` must be finite and >= 0. Found $w at position $j." }
            }
        }
        if (recencyHalfLife != null) {
            require(recencyHalfLife > 0.0 && !recencyHalfLife.isInfinite()) {
                "`recencyHalfLife` must be null or a finite number > 0. Found $recencyHalfLife."
            }
        }
        val labels = FloatArray(numItems)
        val last = history.size - 1
        for (j in history.indices) {
            var label = weights?.get(j)?.toDouble() ?: 1.0
            if (recencyHalfLife != null) label *= Math.pow(0.5, (last - j) / recencyHalfLife)
            val item = history[j]
            labels[item] = Math.max(labels[item], label.toFloat())
        }
        var sum = 0.0
        for (v in labels) sum += v
        require(sum > 0.0) { "the history's labels are all zero: at least one item needs a positive weight." }
        return labels
    }

    /**
     * Step 2: [FinetuneSpec.calls] calls of [backend]'s `finetune` over the whole catalog (`labels.size`
     * items) from [init] (default zeros). Returns the user vector and the loss of the last call.
     *
     * Backend errors propagate unchanged (LiteRT throws [IllegalArgumentException] or
     * [IllegalStateException]); a backend that returns a vector of another length raises
     * [IllegalStateException].
     */
    fun fit(backend: SelfTest.Signatures, labels: FloatArray, dim: Int, spec: FinetuneSpec, init: FloatArray? = null): FinetuneResult {
        require(labels.isNotEmpty()) { "`labels` must hold one label per catalog item. Found none." }
        require(dim > 0) { "`dim` must be > 0. Found $dim." }
        require(spec.calls > 0) { "`calls` must be > 0. Found ${spec.calls}." }
        if (init != null) require(init.size == dim) { "`init` must have $dim values. Found ${init.size}." }
        val candidates = IntArray(labels.size) { it }
        val lr = spec.lr.toFloat()
        val l2 = spec.l2.toFloat()
        var user = init?.copyOf() ?: FloatArray(dim)
        var loss = Double.NaN
        for (call in 0 until spec.calls) {
            val out = backend.finetune(user, candidates, labels, lr, l2)
            check(out.user.size == dim) { "finetune call $call returned ${out.user.size} values; the user vector has $dim." }
            user = out.user
            loss = out.loss
        }
        return FinetuneResult(user, loss)
    }

    /**
     * Both steps for a stored [log] (item ids) on [manifest]'s bundle: the history is mapped through the
     * manifest's item map first, so items this catalog does not hold (removed by a catalog update) are left
     * out, and the vector equals the one a device that started on this bundle with the surviving history
     * builds. Returns the result and the mapping (its `dropped` ids are the ones left out); the result is
     * null when no stored item is in this catalog (the zero vector serves).
     */
    fun reconstruct(backend: SelfTest.Signatures, manifest: Manifest, log: InteractionLog): Pair<FinetuneResult?, MappedHistory> {
        val mapped = log.history(manifest.itemMap)
        if (mapped.rows.isEmpty()) return Pair(null, mapped)
        return Pair(reconstruct(backend, manifest, mapped.rows, mapped.weights), mapped)
    }

    /** Both steps: the user vector of [history] (with optional [weights]) under [manifest]'s recipe, through [backend]. */
    fun reconstruct(backend: SelfTest.Signatures, manifest: Manifest, history: IntArray, weights: FloatArray? = null): FinetuneResult {
        val labels = labels(history, manifest.numItems, manifest.finetune.recencyHalfLife, weights)
        return fit(backend, labels, manifest.dim, manifest.finetune)
    }
}
