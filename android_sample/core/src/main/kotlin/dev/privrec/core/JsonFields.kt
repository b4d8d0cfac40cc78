package dev.privrec.core

/**
 * Typed, validating access to one parsed JSON object of a bundle file.
 *
 * [file] is the bundle file (`manifest.json`, `golden.json`, ...) and [path] the field path inside it,
 * so every error names both: `manifest.json: field "signatures.score.inputs[0].name" must be a string. Found 3.`
 */
class JsonFields(val map: Map<String, Any?>, val file: String, val path: String) {

    fun has(key: String): Boolean = map.containsKey(key)

    private fun where(key: String): String = if (path.length == 0) key else "$path.$key"

    fun fail(key: String, what: String): Nothing =
        throw BundleException(file, "field \"${where(key)}\" $what")

    fun raw(key: String): Any? {
        if (!map.containsKey(key)) fail(key, "is missing")
        return map[key]
    }

    private fun describe(v: Any?): String = if (v is String) "\"$v\"" else v.toString()

    /** Fails naming the unexpected keys unless the object's keys are exactly [expected]. */
    fun requireKeys(expected: Set<String>) = requireKeys(expected, emptySet())

    /** Fails naming the offending keys unless the object holds every key of [required] and none outside [required] + [optional]. */
    fun requireKeys(required: Set<String>, optional: Set<String>) {
        val extra = map.keys - required - optional
        val missing = required - map.keys
        if (extra.isNotEmpty() || missing.isNotEmpty()) {
            val at = if (path.length == 0) "top level" else "\"$path\""
            throw BundleException(
                file,
                "keys at $at differ from the schema: unexpected ${extra.sorted()}, missing ${missing.sorted()}"
            )
        }
    }

    fun string(key: String): String {
        val v = raw(key)
        return v as? String ?: fail(key, "must be a string. Found ${describe(v)}.")
    }

    fun long(key: String): Long {
        val v = raw(key)
        return v as? Long ?: fail(key, "must be an integer. Found ${describe(v)}.")
    }

    fun int(key: String): Int {
        val v = long(key)
        if (v < Int.MIN_VALUE || v > Int.MAX_VALUE) fail(key, "must fit in 32 bits. Found $v.")
        return v.toInt()
    }

    fun double(key: String): Double = toDouble(key, raw(key))

    /** A number, or a one-element list holding a number (`"lr": 1.0` and `"lr": [1.0]` both read as 1.0). */
    fun scalar(key: String): Double {
        val v = raw(key)
        if (v is List<*>) {
            if (v.size != 1) fail(key, "must be a number or a one-element list. Found ${v.size} elements.")
            return toDouble(key, v[0])
        }
        return toDouble(key, v)
    }

    private fun toDouble(key: String, v: Any?): Double = when (v) {
        is Long -> v.toDouble()
        is Double -> v
        else -> fail(key, "must be a number. Found ${describe(v)}.")
    }

    fun obj(key: String): JsonFields {
        val v = raw(key)
        @Suppress("UNCHECKED_CAST")
        val m = v as? Map<String, Any?> ?: fail(key, "must be an object. Found ${describe(v)}.")
        return JsonFields(m, file, where(key))
    }

    fun list(key: String): List<Any?> {
        val v = raw(key)
        return v as? List<*> ?: fail(key, "must be a list. Found ${describe(v)}.")
    }

    /** A list of objects, each wrapped with its indexed path (`items[3]`). */
    fun objects(key: String): List<JsonFields> = list(key).mapIndexed { i, v ->
        @Suppress("UNCHECKED_CAST")
        val m = v as? Map<String, Any?> ?: fail("$key[$i]", "must be an object. Found ${describe(v)}.")
        JsonFields(m, file, where("$key[$i]"))
    }

    fun doubles(key: String): DoubleArray {
        val items = list(key)
        val out = DoubleArray(items.size)
        for (i in items.indices) out[i] = toDouble("$key[$i]", items[i])
        return out
    }

    fun floats(key: String): FloatArray {
        val d = doubles(key)
        val out = FloatArray(d.size)
        for (i in d.indices) out[i] = d[i].toFloat()
        return out
    }

    fun ints(key: String): IntArray {
        val items = list(key)
        val out = IntArray(items.size)
        for (i in items.indices) {
            val v = items[i]
            if (v !is Long || v < Int.MIN_VALUE || v > Int.MAX_VALUE) {
                fail("$key[$i]", "must be a 32-bit integer. Found ${describe(v)}.")
            }
            out[i] = v.toInt()
        }
        return out
    }

    companion object {
        /** Parses [text] (the content of bundle file [file]) and requires a top-level object. */
        fun parse(text: String, file: String): JsonFields {
            val v = try {
                Json.parse(text)
            } catch (e: JsonException) {
                throw BundleException(file, e.message ?: "invalid JSON")
            }
            @Suppress("UNCHECKED_CAST")
            val m = v as? Map<String, Any?> ?: throw BundleException(file, "must hold a JSON object at the top level")
            return JsonFields(m, file, "")
        }
    }
}
