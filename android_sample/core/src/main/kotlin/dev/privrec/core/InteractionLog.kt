package dev.privrec.core

/**
 * One on-device interaction: the app's own item id [itemId] (the manifest's item map, never a model row),
 * [label] (1 = liked) and when it happened (ms since epoch).
 */
data class Interaction(val itemId: String, val label: Float, val timeMillis: Long)

/**
 * The plaintext format of the local interaction store, before the app encrypts it: a small JSON document
 * `{"version": 2, "model_version": "...", "user": [d floats], "interactions": [{"item_id", "label", "time_ms"}]}`.
 * The user vector and history never leave the device; this is only what gets sealed with AES-GCM.
 *
 * The history is kept by item id, so it outlives the bundle it was recorded with: a new bundle (items
 * added, removed, re-ordered) maps it onto its own rows ([history]), and items it no longer holds are
 * left out (reported in [MappedHistory.dropped]) while staying stored. [user] is only a cache of the
 * vector [modelVersion] rebuilt; rebuild it after installing another bundle.
 */
class InteractionLog(val modelVersion: String, val user: FloatArray, val interactions: List<Interaction>) {

    /** The item ids the user has interacted with. */
    fun seenIds(): Set<String> = interactions.map { it.itemId }.toSet()

    /** The rows of [map]'s bundle the user has interacted with: excluded from recommendations. */
    fun seen(map: ItemMap): Set<Int> = interactions.mapNotNull { map.row(it.itemId) }.toSet()

    /** The item ids, oldest first. */
    fun historyIds(): List<String> = interactions.map { it.itemId }

    /** The weight of each interaction: its stored label. */
    fun weights(): FloatArray = FloatArray(interactions.size) { interactions[it].label }

    /**
     * The history [Reconstruction.labels] rebuilds the user vector from, on [map]'s bundle: the rows of the
     * items it holds, oldest first, their weights, and the ids it does not hold.
     */
    fun history(map: ItemMap): MappedHistory = map.map(historyIds(), weights())

    /** This log with [interaction] appended as the latest. The user vector is unchanged until the caller rebuilds it. */
    fun with(interaction: Interaction): InteractionLog {
        require(interaction.itemId.isNotEmpty()) { "`itemId` must be a non-empty item id." }
        return InteractionLog(modelVersion, user, interactions + interaction)
    }

    /** This log without any interaction with [itemId] (an unlike). The user vector is unchanged until the caller rebuilds it. */
    fun without(itemId: String): InteractionLog = InteractionLog(modelVersion, user, interactions.filter { it.itemId != itemId })

    fun withUser(newUser: FloatArray): InteractionLog = InteractionLog(modelVersion, newUser.copyOf(), interactions)

    /** This log's history with the user vector of another bundle ([modelVersion]), to be rebuilt by the caller. */
    fun forModel(newModelVersion: String, dim: Int): InteractionLog = InteractionLog(newModelVersion, FloatArray(dim), interactions)

    fun encode(): ByteArray {
        val doc = linkedMapOf(
            "version" to VERSION,
            "model_version" to modelVersion,
            "user" to user.toList(),
            "interactions" to interactions.map { linkedMapOf("item_id" to it.itemId, "label" to it.label, "time_ms" to it.timeMillis) }
        )
        return Json.write(doc).toByteArray(Charsets.UTF_8)
    }

    companion object {
        const val VERSION = 2
        /** The earlier format: `interactions[].item` held a model row of the bundle [modelVersion] names. */
        const val ROWS_VERSION = 1
        private const val FILE = "interaction store"

        fun empty(modelVersion: String, dim: Int): InteractionLog = InteractionLog(modelVersion, FloatArray(dim), emptyList())

        /**
         * Reads a sealed log's plaintext. A log of the earlier format (version 1, model rows) is converted to
         * item ids through the item map of [rowsBundle], which must be the bundle whose rows it holds (the
         * one its `model_version` names); rows outside that catalog are dropped. Without that bundle the
         * log is refused: rows of another catalog would name other items.
         *
         * @throws BundleException naming the store and the field for anything else: an unknown version, an
         *   `item_id` that is not a non-empty string, a missing or extra key.
         */
        fun decode(bytes: ByteArray, rowsBundle: Manifest? = null): InteractionLog {
            val root = JsonFields.parse(String(bytes, Charsets.UTF_8), FILE)
            root.requireKeys(setOf("version", "model_version", "user", "interactions"))
            val version = root.int("version")
            if (version != VERSION && version != ROWS_VERSION) root.fail("version", "is $version; this reader knows $ROWS_VERSION and $VERSION.")
            fun label(o: JsonFields): Float {
                val v = o.double("label")
                if (v.isNaN() || v.isInfinite() || v < 0.0) o.fail("label", "must be finite and >= 0. Found $v.")
                return v.toFloat()
            }
            val list = root.objects("interactions").mapNotNull {
                if (version == ROWS_VERSION) {
                    it.requireKeys(setOf("item", "label", "time_ms"))
                    val written = root.string("model_version")
                    if (rowsBundle == null || rowsBundle.modelVersion != written) {
                        root.fail("version", "is $ROWS_VERSION (rows of model $written): pass the manifest of the bundle those rows index to convert them.")
                    }
                    val map = rowsBundle.itemMap
                    val row = it.int("item")
                    if (row < 0) it.fail("item", "must be a row >= 0. Found $row.")
                    if (row < map.numItems) Interaction(map.id(row), label(it), it.long("time_ms")) else null
                } else {
                    it.requireKeys(setOf("item_id", "label", "time_ms"))
                    val id = it.string("item_id")
                    if (id.isEmpty()) it.fail("item_id", "must be a non-empty item id. Found \"\".")
                    Interaction(id, label(it), it.long("time_ms"))
                }
            }
            return InteractionLog(root.string("model_version"), root.floats("user"), list)
        }
    }
}
