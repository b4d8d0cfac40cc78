package dev.privrec.core

/** One on-device interaction: model row [item], [label] (1 = liked) and when it happened (ms since epoch). */
data class Interaction(val item: Int, val label: Float, val timeMillis: Long)

/**
 * The plaintext format of the local interaction store, before the app encrypts it: a small JSON document
 * `{"version": 1, "model_version": "...", "user": [d floats], "interactions": [{"item", "label", "time_ms"}]}`.
 * The user vector and history never leave the device; this is only what gets sealed with AES-GCM.
 */
class InteractionLog(val modelVersion: String, val user: FloatArray, val interactions: List<Interaction>) {

    /** Items the user has already interacted with: excluded from recommendations. */
    fun seen(): Set<Int> = interactions.map { it.item }.toSet()

    /** The history the recipe rebuilds the user vector from ([Reconstruction.labels]): item rows, oldest first. */
    fun history(): IntArray = IntArray(interactions.size) { interactions[it].item }

    /** The weight of each [history] entry: its stored label. */
    fun weights(): FloatArray = FloatArray(interactions.size) { interactions[it].label }

    /** This log with [interaction] appended as the latest. The user vector is unchanged until the caller rebuilds it. */
    fun with(interaction: Interaction): InteractionLog = InteractionLog(modelVersion, user, interactions + interaction)

    /** This log without any interaction with [item] (an unlike). The user vector is unchanged until the caller rebuilds it. */
    fun without(item: Int): InteractionLog = InteractionLog(modelVersion, user, interactions.filter { it.item != item })

    fun withUser(newUser: FloatArray): InteractionLog = InteractionLog(modelVersion, newUser.copyOf(), interactions)

    fun encode(): ByteArray {
        val doc = linkedMapOf(
            "version" to VERSION,
            "model_version" to modelVersion,
            "user" to user.toList(),
            "interactions" to interactions.map { linkedMapOf("item" to it.item, "label" to it.label, "time_ms" to it.timeMillis) }
        )
        return Json.write(doc).toByteArray(Charsets.UTF_8)
    }

    companion object {
        const val VERSION = 1
        private const val FILE = "interaction store"

        fun empty(modelVersion: String, dim: Int): InteractionLog = InteractionLog(modelVersion, FloatArray(dim), emptyList())

        fun decode(bytes: ByteArray): InteractionLog {
            val root = JsonFields.parse(String(bytes, Charsets.UTF_8), FILE)
            root.requireKeys(setOf("version", "model_version", "user", "interactions"))
            val version = root.int("version")
            if (version != VERSION) root.fail("version", "is $version; this reader knows $VERSION.")
            val list = root.objects("interactions").map {
                it.requireKeys(setOf("item", "label", "time_ms"))
                Interaction(it.int("item"), it.double("label").toFloat(), it.long("time_ms"))
            }
            return InteractionLog(root.string("model_version"), root.floats("user"), list)
        }
    }
}
