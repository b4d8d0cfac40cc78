package dev.privrec.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.nio.ByteBuffer
import java.nio.ByteOrder

class SafeTensorsTest {
    /** A safetensors file written by hand: F32[2] "b" then I8[2,2] "q". */
    private fun sample(header: String = """{"__metadata__":{"format":"np"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"q":{"dtype":"I8","shape":[2,2],"data_offsets":[8,12]}}"""): ByteArray {
        val h = header.toByteArray(Charsets.UTF_8)
        val buf = ByteBuffer.allocate(8 + h.size + 12).order(ByteOrder.LITTLE_ENDIAN)
        buf.putLong(h.size.toLong()).put(h).putFloat(1.5f).putFloat(-2f).put(byteArrayOf(1, -1, 127, -127))
        return buf.array()
    }

    @Test
    fun readsTensors() {
        val t = SafeTensors.read(sample(), "w.safetensors")
        assertEquals(setOf("b", "q"), t.keys)
        assertArrayEquals(floatArrayOf(1.5f, -2f), t.getValue("b").floats(), 0f)
        assertArrayEquals(byteArrayOf(1, -1, 127, -127), t.getValue("q").int8s())
        assertArrayEquals(intArrayOf(2, 2), t.getValue("q").shape)
    }

    private fun assertRefused(bytes: ByteArray, fragment: String) {
        try {
            SafeTensors.read(bytes, "w.safetensors")
            fail("expected a BundleException")
        } catch (e: BundleException) {
            assertEquals("w.safetensors", e.file)
            assertTrue("message <${e.message}> lacks <$fragment>", e.message!!.contains(fragment))
        }
    }

    @Test
    fun refusesTruncatedOrInconsistentFiles() {
        assertRefused(ByteArray(4), "too short")
        assertRefused(sample().copyOf(20), "header length")
        assertRefused(sample().copyOf(sample().size - 1), "data_offsets")
        assertRefused(sample("""{"b":{"dtype":"F32","shape":[3],"data_offsets":[0,8]},"q":{"dtype":"I8","shape":[2,2],"data_offsets":[8,12]}}   """), "needs 12")
        assertRefused(sample("""{"b":{"dtype":"X9","shape":[2],"data_offsets":[0,8]},"q":{"dtype":"I8","shape":[2,2],"data_offsets":[8,12]}}   """), "not a known safetensors dtype")
    }
}
