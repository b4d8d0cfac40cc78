package dev.privrec.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import java.io.File

/** [load] refuses its bundle with a [BundleException] naming [file], whose message contains [fragment]. */
fun assertRefused(file: String, fragment: String, load: () -> Unit) {
    try {
        load()
        fail("expected the bundle to be refused naming $file ($fragment)")
    } catch (e: BundleException) {
        assertEquals("file named in <${e.message}>", file, e.file)
        assertTrue("message <${e.message}> lacks <$fragment>", e.message!!.contains(fragment))
    }
}

/** Rewrite [dir]'s manifest.json through [edit] (the signature, if any, no longer matches). */
fun editManifest(dir: File, edit: (MutableMap<String, Any?>) -> Unit) {
    val f = File(dir, Manifest.FILE)
    @Suppress("UNCHECKED_CAST")
    val doc = Json.parse(f.readText()) as MutableMap<String, Any?>
    edit(doc)
    f.writeText(Json.write(doc))
}
