package dev.privrec.core

/**
 * A history of the app's item ids mapped onto one bundle's rows: the [rows] and [weights] of the ids the
 * bundle holds, in history order (oldest first), and the ids it does not hold ([dropped], in order: items
 * a catalog update removed, or never in the catalog).
 */
class MappedHistory(val rows: IntArray, val weights: FloatArray, val dropped: List<String>)

/**
 * Row ↔ the app's own item id for one bundle: the manifest's item map (docs/BUNDLE.md, "Item map").
 *
 * A device stores its history by item id, never by row: each bundle maps it onto its own rows, so after a
 * catalog update (a new bundle with items added, removed and re-ordered) every surviving item keeps its
 * place in the history and the removed ones are left out. A bundle whose `items` is empty has the
 * implicit map ([explicit] false): row `r` holds the item with id `r.toString()`.
 */
class ItemMap(ids: List<String>, val explicit: Boolean = true) {
    /** `ids[row]`: the app's id of the item in that row. */
    val ids: List<String> = ids.toList()
    private val rowOf: Map<String, Int>

    init {
        val m = HashMap<String, Int>(ids.size * 2)
        for ((row, id) in this.ids.withIndex()) {
            require(id.isNotEmpty()) { "item ids must be non-empty. Found \"\" at row $row." }
            val before = m.put(id, row)
            require(before == null) { "item ids must be unique. Found \"$id\" at rows $before and $row." }
        }
        rowOf = m
    }

    val numItems: Int get() = ids.size

    /** The row holding [id], or null when this catalog does not hold it. */
    fun row(id: String): Int? = rowOf[id]

    /** The app's id of [row] (in `[0, numItems)`). */
    fun id(row: Int): String {
        require(row in 0 until ids.size) { "`row` must be in [0, ${ids.size}). Found $row." }
        return ids[row]
    }

    /** Maps [history] (item ids, oldest first) and its optional [weights] (default 1) onto this map's rows. */
    fun map(history: List<String>, weights: FloatArray? = null): MappedHistory {
        if (weights != null) {
            require(weights.size == history.size) { "`weights` must have one weight per item id (${history.size}). Found ${weights.size}." }
        }
        val rows = ArrayList<Int>(history.size)
        val kept = ArrayList<Float>(history.size)
        val dropped = ArrayList<String>()
        for ((pos, id) in history.withIndex()) {
            val row = rowOf[id]
            if (row == null) {
                dropped.add(id)
            } else {
                rows.add(row)
                kept.add(weights?.get(pos) ?: 1f)
            }
        }
        return MappedHistory(rows.toIntArray(), kept.toFloatArray(), dropped)
    }

    companion object {
        /** The map of a bundle without an item map: row `r` holds id `r.toString()`. */
        fun implicit(numItems: Int): ItemMap = ItemMap(List(numItems) { it.toString() }, explicit = false)

        /** The map of a manifest's validated `items` (sorted by index), or the implicit one when empty. */
        fun of(items: List<CatalogItem>, numItems: Int): ItemMap =
            if (items.isEmpty()) implicit(numItems) else ItemMap(items.sortedBy { it.index }.map { it.id })
    }
}
