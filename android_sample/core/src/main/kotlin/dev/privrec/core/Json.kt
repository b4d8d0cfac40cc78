package dev.privrec.core

/**
 * A small, strict JSON reader and writer (RFC 8259), so the core needs nothing beyond the Kotlin stdlib.
 *
 * Values map to Kotlin as: object -> [Map] (insertion order kept), array -> [List], string -> [String],
 * integer literal that fits -> [Long], any other number -> [Double], true/false -> [Boolean], null -> null.
 * Bundle JSON is strict (docs/BUNDLE.md): Python's non-standard `NaN` / `Infinity` literals are refused,
 * and [write] refuses non-finite numbers. Errors are [JsonException]s that give the character offset.
 */
object Json {
    /**
     * Arrays and objects nested deeper than this are refused, so hostile input cannot overflow the stack;
     * the same bound as the Python reader (docs/BUNDLE.md, "Limits": the deepest field written is about 5).
     */
    const val MAX_DEPTH = 64

    /** Parses one JSON document; anything but whitespace after it is an error. */
    fun parse(text: String): Any? = JsonParser(text).parseDocument()

    /** Writes [value] (built from the types above, plus Int/Float/Double/Number) as compact JSON. */
    fun write(value: Any?): String {
        val out = StringBuilder()
        writeValue(value, out)
        return out.toString()
    }

    private fun writeValue(value: Any?, out: StringBuilder) {
        when (value) {
            null -> out.append("null")
            is Boolean -> out.append(if (value) "true" else "false")
            is String -> writeString(value, out)
            is Int, is Long, is Short, is Byte -> out.append(value.toString())
            is Float -> writeDouble(value.toDouble(), out)
            is Double -> writeDouble(value, out)
            is Map<*, *> -> {
                out.append('{')
                var first = true
                for ((k, v) in value) {
                    if (k !is String) throw JsonException("object keys must be strings. Found ${k?.javaClass?.name}.")
                    if (!first) out.append(',')
                    first = false
                    writeString(k, out)
                    out.append(':')
                    writeValue(v, out)
                }
                out.append('}')
            }
            is Iterable<*> -> {
                out.append('[')
                var first = true
                for (v in value) {
                    if (!first) out.append(',')
                    first = false
                    writeValue(v, out)
                }
                out.append(']')
            }
            is IntArray -> writeValue(value.toList(), out)
            is FloatArray -> writeValue(value.toList(), out)
            else -> throw JsonException("cannot write a ${value.javaClass.name} as JSON.")
        }
    }

    private fun writeDouble(v: Double, out: StringBuilder) {
        if (v.isNaN() || v.isInfinite()) throw JsonException("JSON has no $v: write null or a finite number.")
        out.append(v.toString())
    }

    private fun writeString(s: String, out: StringBuilder) {
        out.append('"')
        for (c in s) {
            when (c) {
                '"' -> out.append("\\\"")
                '\\' -> out.append("\\\\")
                '\n' -> out.append("\\n")
                '\r' -> out.append("\\r")
                '\t' -> out.append("\\t")
                '\b' -> out.append("\\b")
                '\u000C' -> out.append("\\f")
                else -> if (c < ' ') out.append(String.format("\\u%04x", c.toInt())) else out.append(c)
            }
        }
        out.append('"')
    }
}

/** A syntax error, with the character offset where it was found. */
class JsonException(message: String) : RuntimeException(message)

private class JsonParser(private val s: String) {
    private var pos = 0

    fun parseDocument(): Any? {
        skipWhitespace()
        val value = parseValue(0)
        skipWhitespace()
        if (pos != s.length) fail("unexpected trailing content")
        return value
    }

    private fun fail(what: String): Nothing {
        val near = if (pos < s.length) "'${s[pos]}'" else "end of input"
        throw JsonException("invalid JSON at offset $pos (near $near): $what.")
    }

    private fun skipWhitespace() {
        while (pos < s.length) {
            val c = s[pos]
            if (c == ' ' || c == '\n' || c == '\r' || c == '\t') pos++ else return
        }
    }

    /** [depth] is the number of arrays and objects around the value (0 for the document itself). */
    private fun parseValue(depth: Int): Any? {
        if (pos >= s.length) fail("expected a value")
        val c = s[pos]
        if ((c == '{' || c == '[') && depth >= Json.MAX_DEPTH) fail("nesting deeper than ${Json.MAX_DEPTH} levels")
        return when (c) {
            '{' -> parseObject(depth)
            '[' -> parseArray(depth)
            '"' -> parseString()
            't' -> literal("true", true)
            'f' -> literal("false", false)
            'n' -> literal("null", null)
            'N', 'I' -> fail("NaN and Infinity are not JSON (bundle files are strict JSON)")
            else -> parseNumber()
        }
    }

    private fun literal(word: String, value: Any?): Any? {
        if (!s.startsWith(word, pos)) fail("expected '$word'")
        pos += word.length
        return value
    }

    private fun parseObject(depth: Int): Map<String, Any?> {
        val result = LinkedHashMap<String, Any?>()
        pos++ // '{'
        skipWhitespace()
        if (pos < s.length && s[pos] == '}') {
            pos++
            return result
        }
        while (true) {
            skipWhitespace()
            if (pos >= s.length || s[pos] != '"') fail("expected a string key")
            val key = parseString()
            skipWhitespace()
            if (pos >= s.length || s[pos] != ':') fail("expected ':'")
            pos++
            skipWhitespace()
            if (result.containsKey(key)) fail("duplicate key \"$key\"")
            result[key] = parseValue(depth + 1)
            skipWhitespace()
            if (pos >= s.length) fail("unterminated object")
            when (s[pos]) {
                ',' -> pos++
                '}' -> {
                    pos++
                    return result
                }
                else -> fail("expected ',' or '}'")
            }
        }
    }

    private fun parseArray(depth: Int): List<Any?> {
        val result = ArrayList<Any?>()
        pos++ // '['
        skipWhitespace()
        if (pos < s.length && s[pos] == ']') {
            pos++
            return result
        }
        while (true) {
            skipWhitespace()
            result.add(parseValue(depth + 1))
            skipWhitespace()
            if (pos >= s.length) fail("unterminated array")
            when (s[pos]) {
                ',' -> pos++
                ']' -> {
                    pos++
                    return result
                }
                else -> fail("expected ',' or ']'")
            }
        }
    }

    private fun parseString(): String {
        pos++ // opening quote
        val out = StringBuilder()
        while (true) {
            if (pos >= s.length) fail("unterminated string")
            val c = s[pos++]
            when {
                c == '"' -> return out.toString()
                c == '\\' -> {
                    if (pos >= s.length) fail("unterminated escape")
                    when (val e = s[pos++]) {
                        '"' -> out.append('"')
                        '\\' -> out.append('\\')
                        '/' -> out.append('/')
                        'b' -> out.append('\b')
                        'f' -> out.append('\u000C')
                        'n' -> out.append('\n')
                        'r' -> out.append('\r')
                        't' -> out.append('\t')
                        'u' -> {
                            if (pos + 4 > s.length) fail("truncated \\u escape")
                            val hex = s.substring(pos, pos + 4)
                            for (h in hex) {
                                if (Character.digit(h, 16) < 0) fail("bad \\u escape \"$hex\"")
                            }
                            out.append(hex.toInt(16).toChar())
                            pos += 4
                        }
                        else -> {
                            pos--
                            fail("bad escape '\\$e'")
                        }
                    }
                }
                c < ' ' -> {
                    pos--
                    fail("control character in string")
                }
                else -> out.append(c)
            }
        }
    }

    private fun parseNumber(): Any {
        val start = pos
        if (s[pos] == '-') {
            pos++
            if (s.startsWith("Infinity", pos)) fail("NaN and Infinity are not JSON (bundle files are strict JSON)")
        }
        if (pos >= s.length) fail("expected a digit")
        if (s[pos] == '0') {
            pos++
        } else if (s[pos] in '1'..'9') {
            while (pos < s.length && s[pos] in '0'..'9') pos++
        } else {
            fail("expected a value")
        }
        var integral = true
        if (pos < s.length && s[pos] == '.') {
            integral = false
            pos++
            if (pos >= s.length || s[pos] !in '0'..'9') fail("expected a digit after '.'")
            while (pos < s.length && s[pos] in '0'..'9') pos++
        }
        if (pos < s.length && (s[pos] == 'e' || s[pos] == 'E')) {
            integral = false
            pos++
            if (pos < s.length && (s[pos] == '+' || s[pos] == '-')) pos++
            if (pos >= s.length || s[pos] !in '0'..'9') fail("expected a digit in the exponent")
            while (pos < s.length && s[pos] in '0'..'9') pos++
        }
        val text = s.substring(start, pos)
        if (integral) {
            val asLong = text.toLongOrNull()
            if (asLong != null) return asLong
        }
        return text.toDouble()
    }
}
