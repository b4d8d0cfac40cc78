package dev.privrec.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class JsonTest {
    private fun assertInvalid(text: String, fragment: String) {
        try {
            Json.parse(text)
            fail("expected a JsonException for <$text>")
        } catch (e: JsonException) {
            assertTrue("message <${e.message}> lacks <$fragment>", e.message!!.contains(fragment))
        }
    }

    @Test
    fun parsesScalars() {
        assertEquals(true, Json.parse("true"))
        assertEquals(false, Json.parse(" false "))
        assertEquals(null, Json.parse("null"))
        assertEquals(42L, Json.parse("42"))
        assertEquals(-7L, Json.parse("-7"))
        assertEquals(0.5, Json.parse("0.5"))
        assertEquals(-1.25e-3, Json.parse("-1.25E-3"))
        assertEquals(1e20, Json.parse("1e20"))
        assertEquals(1.0e19, Json.parse("10000000000000000000")) // does not fit a Long: read as a double
        assertEquals(-0.0, Json.parse("-0.0"))
    }

    @Test
    fun refusesPythonNonFiniteLiterals() {
        // Python's json.dumps writes these by default; docs/BUNDLE.md requires strict JSON instead.
        assertInvalid("NaN", "NaN and Infinity are not JSON")
        assertInvalid("[1, Infinity]", "NaN and Infinity are not JSON")
        assertInvalid("{\"eps\": -Infinity}", "NaN and Infinity are not JSON")
        try {
            Json.write(listOf(Double.NEGATIVE_INFINITY))
            fail("expected a JsonException")
        } catch (e: JsonException) {
            assertEquals("JSON has no -Infinity: write null or a finite number.", e.message)
        }
    }

    @Test
    fun parsesStringsWithEscapes() {
        assertEquals("a\"b\\c/d\b\u000C\n\r\t", Json.parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\""))
        assertEquals("é", Json.parse("\"\\u00e9\""))
        assertEquals("\uD83C\uDFAC", Json.parse("\"\\ud83c\\udfac\"")) // surrogate pair (clapper board)
        assertEquals("Amélie (2001)", Json.parse("\"Amélie (2001)\""))
    }

    @Test
    fun parsesNestedStructuresInOrder() {
        val v = Json.parse("""{"b": [1, 2.5, "x", null, {"c": []}], "a": {}}""") as Map<*, *>
        assertEquals(listOf("b", "a"), v.keys.toList())
        val b = v["b"] as List<*>
        assertEquals(listOf(1L, 2.5, "x", null, mapOf("c" to emptyList<Any>())), b)
        assertEquals(emptyMap<String, Any>(), v["a"])
    }

    @Test
    fun rejectsInvalidDocuments() {
        assertInvalid("[1, 2,]", "expected a value")
        assertInvalid("{\"a\": 1,}", "expected a string key")
        assertInvalid("01", "unexpected trailing content")
        assertInvalid("1.", "expected a digit after '.'")
        assertInvalid("1e", "expected a digit in the exponent")
        assertInvalid("\"abc", "unterminated string")
        assertInvalid("\"a\nb\"", "control character in string")
        assertInvalid("\"\\x\"", "bad escape")
        assertInvalid("\"\\u12g4\"", "bad \\u escape")
        assertInvalid("{\"a\": 1, \"a\": 2}", "duplicate key \"a\"")
        assertInvalid("{\"a\" 1}", "expected ':'")
        assertInvalid("[1 2]", "expected ',' or ']'")
        assertInvalid("tru", "expected 'true'")
        assertInvalid("", "expected a value")
        assertInvalid("[] []", "unexpected trailing content")
        assertInvalid("[".repeat(Json.MAX_DEPTH + 2), "nesting deeper than")
    }

    @Test
    fun reportsTheOffset() {
        try {
            Json.parse("{\"a\": [1, 2 3]}")
            fail("expected a JsonException")
        } catch (e: JsonException) {
            assertEquals("invalid JSON at offset 12 (near '3'): expected ',' or ']'.", e.message)
        }
    }

    @Test
    fun writeThenParseRoundTrips() {
        val doc = linkedMapOf(
            "s" to "quote \" backslash \\ newline \n tab \t ctrl \u0001 é",
            "i" to 3,
            "l" to 1234567890123L,
            "f" to 0.1f,
            "d" to -2.5e-8,
            "list" to listOf(1, null, true, false, listOf<Any>()),
            "empty" to emptyMap<String, Any>()
        )
        val back = Json.parse(Json.write(doc)) as Map<*, *>
        assertEquals(doc["s"], back["s"])
        assertEquals(3L, back["i"])
        assertEquals(1234567890123L, back["l"])
        assertEquals(0.1f, (back["f"] as Double).toFloat())
        assertEquals(-2.5e-8, back["d"])
        assertEquals(listOf(1L, null, true, false, emptyList<Any>()), back["list"])
        assertEquals(emptyMap<String, Any>(), back["empty"])
    }
}
