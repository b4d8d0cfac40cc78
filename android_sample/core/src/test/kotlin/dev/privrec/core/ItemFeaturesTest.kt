package dev.privrec.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Rule
import org.junit.Test
import org.junit.rules.TemporaryFolder
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The optional `item_features` field of `manifest.json` and its file `item_features.safetensors`, checked
 * as privrec/export/manifest.py `load_item_features` checks them. Like [BundleTest], it edits the manifests
 * of bundles exported by `privrec export` in the same run (`privrec.bundles` / `PRIVREC_BUNDLES`).
 */
class ItemFeaturesTest {
    @get:Rule
    val tmp = TemporaryFolder()

    private fun bundleDirs(): List<File> = TestInputs.bundleDirs()

    /** The first bundle's manifest as a mutable JSON document. */
    private fun baseDoc(): MutableMap<String, Any?> {
        @Suppress("UNCHECKED_CAST")
        return Json.parse(File(bundleDirs().first(), Manifest.FILE).readText()) as MutableMap<String, Any?>
    }

    @Suppress("UNCHECKED_CAST")
    private fun files(doc: MutableMap<String, Any?>): MutableMap<String, Any?> = doc["files"] as MutableMap<String, Any?>

    /** [doc] with `item_features` set to [field] and `item_features.safetensors` listed in `files` (hash not checked by a parse). */
    private fun withField(field: Any?): MutableMap<String, Any?> {
        val doc = baseDoc()
        files(doc)[ItemFeaturesFile.FILE] = mapOf("sha256" to "0".repeat(64), "size" to 0)
        doc["item_features"] = field
        return doc
    }

    private fun assertManifestRefused(doc: Map<String, Any?>, fragment: String) {
        try {
            Manifest.parse(Json.write(doc))
            fail("expected manifest.json with item_features=${doc["item_features"]} to be refused")
        } catch (e: BundleException) {
            assertEquals("file named in <${e.message}>", Manifest.FILE, e.file)
            assertTrue("message <${e.message}> lacks <$fragment>", e.message!!.contains(fragment))
        }
    }

    /** A safetensors file of one tensor written by hand: [name], [dtype], [shape], little-endian [data]. */
    private fun safetensors(name: String, dtype: String, shape: List<Int>, data: ByteArray, extra: String = ""): ByteArray {
        val header = "{\"$name\":{\"dtype\":\"$dtype\",\"shape\":${shape},\"data_offsets\":[0,${data.size}]}$extra}"
            .replace(" ", "").toByteArray(Charsets.UTF_8)
        return ByteBuffer.allocate(8 + header.size + data.size).order(ByteOrder.LITTLE_ENDIAN)
            .putLong(header.size.toLong()).put(header).put(data).array()
    }

    private fun f32(values: FloatArray): ByteArray {
        val buf = ByteBuffer.allocate(4 * values.size).order(ByteOrder.LITTLE_ENDIAN)
        for (v in values) buf.putFloat(v)
        return buf.array()
    }

    private fun features(numItems: Int, columns: Int): FloatArray = FloatArray(numItems * columns) { if (it % 3 == 0) 1f else it * 0.125f }

    @Test
    fun aValidItemFeaturesFieldParses() {
        val m = Manifest.parse(Json.write(withField(mapOf("file" to "item_features.safetensors", "columns" to 3))))
        assertEquals(ItemFeatures("item_features.safetensors", 3), m.itemFeatures)
        assertEquals(1, Manifest.parse(Json.write(withField(mapOf("columns" to 1, "file" to "item_features.safetensors")))).itemFeatures!!.columns)
        // Optional: absent or null means the bundle ships no item features (as in the Python reader).
        val absent = baseDoc()
        absent.remove("item_features")
        assertNull(Manifest.parse(Json.write(absent)).itemFeatures)
        assertNull(Manifest.parse(Json.write(withField(null))).itemFeatures)
    }

    @Test
    fun invalidItemFeaturesFieldsAreRefusedNamingTheField() {
        val file = ItemFeaturesFile.FILE
        assertManifestRefused(
            withField(mapOf("file" to file, "columns" to 3, "dtype" to "float32")),
            "manifest.json: keys at \"item_features\" differ from the schema: unexpected [dtype], missing []"
        )
        assertManifestRefused(
            withField(mapOf("file" to file)),
            "manifest.json: keys at \"item_features\" differ from the schema: unexpected [], missing [columns]"
        )
        assertManifestRefused(withField(file), "manifest.json: field \"item_features\" must be an object. Found \"$file\".")
        assertManifestRefused(withField(listOf(file, 3)), "manifest.json: field \"item_features\" must be an object.")

        // The file name is fixed, and the file must be listed in `files` (so its sha256 is checked).
        val renamed = withField(mapOf("file" to "features.safetensors", "columns" to 3))
        files(renamed)["features.safetensors"] = mapOf("sha256" to "0".repeat(64), "size" to 0)
        assertManifestRefused(
            renamed,
            "manifest.json: field \"item_features.file\" must be \"item_features.safetensors\", listed in \"files\". Found \"features.safetensors\"."
        )
        assertManifestRefused(
            withField(mapOf("file" to 7, "columns" to 3)),
            "manifest.json: field \"item_features.file\" must be \"item_features.safetensors\", listed in \"files\". Found 7."
        )
        val unlisted = withField(mapOf("file" to file, "columns" to 3))
        files(unlisted).remove(file)
        assertManifestRefused(
            unlisted,
            "manifest.json: field \"item_features.file\" must be \"item_features.safetensors\", listed in \"files\". Found \"$file\"."
        )

        // `columns` is an integer >= 1: not 0, negative, a string, a float or a boolean.
        for ((columns, shown) in listOf(0 to "0", -2 to "-2", "3" to "\"3\"", 2.0 to "2.0", 1.5 to "1.5", true to "true", null to "null")) {
            assertManifestRefused(
                withField(mapOf("file" to file, "columns" to columns)),
                "manifest.json: field \"item_features.columns\" must be an integer >= 1. Found $shown."
            )
        }
    }

    private fun copyWithFeatures(name: String, columns: Int, bytes: ByteArray): File {
        val dir = tmp.newFolder(name)
        bundleDirs().first().copyRecursively(dir, overwrite = true)
        File(dir, ItemFeaturesFile.FILE).writeBytes(bytes)
        val f = File(dir, Manifest.FILE)
        @Suppress("UNCHECKED_CAST")
        val doc = Json.parse(f.readText()) as MutableMap<String, Any?>
        files(doc)[ItemFeaturesFile.FILE] = mapOf("sha256" to Sha256.hex(bytes), "size" to bytes.size)
        doc["item_features"] = mapOf("file" to ItemFeaturesFile.FILE, "columns" to columns)
        f.writeText(Json.write(doc))
        return dir
    }

    @Test
    fun aBundleWithItemFeaturesLoadsThem() {
        val n = Manifest.parse(File(bundleDirs().first(), Manifest.FILE).readText()).numItems
        val values = features(n, 4)
        val dir = copyWithFeatures("with-features", 4, safetensors("item_features", "F32", listOf(n, 4), f32(values)))
        val bundle = Bundle.load(dir, null, allowUnsigned = true)  // the manifest was edited: its signature no longer holds
        assertEquals(ItemFeatures(ItemFeaturesFile.FILE, 4), bundle.manifest.itemFeatures)
        val table = bundle.itemFeatures!!
        assertEquals(n, table.numItems)
        assertEquals(4, table.columns)
        assertArrayEquals(values, table.values, 0f)
        assertArrayEquals(values.copyOfRange(4, 8), table.row(1), 0f)

        // The file is hashed like every listed file: one flipped byte is refused, naming it.
        val bytes = File(dir, ItemFeaturesFile.FILE).readBytes()
        bytes[bytes.size - 2] = (bytes[bytes.size - 2].toInt() xor 0x01).toByte()
        File(dir, ItemFeaturesFile.FILE).writeBytes(bytes)
        try {
            Bundle.load(dir, null, allowUnsigned = true)
            fail("expected a tampered item_features.safetensors to be refused")
        } catch (e: BundleException) {
            assertEquals(ItemFeaturesFile.FILE, e.file)
            assertTrue(e.message!!, e.message!!.contains("sha256"))
        }
    }

    /** Exported bundles: when the manifest has `item_features`, [Bundle.load] reads a finite `[numItems, columns]` table. */
    @Test
    fun exportedItemFeaturesMatchTheManifest() {
        for (dir in bundleDirs()) {
            val bundle = Bundle.load(dir, TestInputs.publicKey())
            val spec = bundle.manifest.itemFeatures
            if (spec == null) {
                assertNull(bundle.itemFeatures)
                continue
            }
            val table = bundle.itemFeatures!!
            println("${dir.name}: ${ItemFeaturesFile.FILE} ${table.numItems} × ${table.columns}")
            assertEquals(bundle.manifest.numItems, table.numItems)
            assertEquals(spec.columns, table.columns)
            assertTrue(table.values.all { !it.isNaN() && !it.isInfinite() })
        }
    }

    private fun assertFileRefused(bytes: ByteArray, columns: Int, fragment: String) {
        val m = Manifest.parse(Json.write(withField(mapOf("file" to ItemFeaturesFile.FILE, "columns" to columns))))
        try {
            ItemFeaturesFile.read(bytes, m)
            fail("expected item_features.safetensors to be refused ($fragment)")
        } catch (e: BundleException) {
            assertEquals("file named in <${e.message}>", ItemFeaturesFile.FILE, e.file)
            assertTrue("message <${e.message}> lacks <$fragment>", e.message!!.contains(fragment))
        }
    }

    @Test
    fun theFeaturesFileMustHoldOneFiniteF32TensorOfTheManifestShape() {
        val n = Manifest.parse(File(bundleDirs().first(), Manifest.FILE).readText()).numItems
        val ok = safetensors("item_features", "F32", listOf(n, 2), f32(features(n, 2)))
        val m = Manifest.parse(Json.write(withField(mapOf("file" to ItemFeaturesFile.FILE, "columns" to 2))))
        assertEquals(2 * n, ItemFeaturesFile.read(ok, m)!!.values.size)
        val none = baseDoc()
        none.remove("item_features")
        assertNull(ItemFeaturesFile.read(ok, Manifest.parse(Json.write(none))))

        assertFileRefused(ok, 3, "item_features.safetensors: tensor \"item_features\" has shape [$n, 2]; manifest.json says [$n, 3]")
        assertFileRefused(
            safetensors("item_features", "F32", listOf(2, n), f32(features(n, 2))), 2,
            "tensor \"item_features\" has shape [2, $n]; manifest.json says [$n, 2]"
        )
        assertFileRefused(
            safetensors("item_features", "F64", listOf(n, 1), ByteArray(8 * n)), 1,
            "tensor \"item_features\" has dtype F64; it must be F32"
        )
        assertFileRefused(
            safetensors("item_features", "I32", listOf(n, 1), ByteArray(4 * n)), 1,
            "tensor \"item_features\" has dtype I32; it must be F32"
        )
        assertFileRefused(
            safetensors("genres", "F32", listOf(n, 1), ByteArray(4 * n)), 1,
            "holds tensors [genres]; manifest.json \"item_features\" needs exactly [item_features]"
        )
        assertFileRefused(
            safetensors("item_features", "F32", listOf(n, 1), ByteArray(4 * n), ",\"extra\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}"), 1,
            "holds tensors [extra, item_features]"
        )
        val nan = features(n, 1)
        nan[5] = Float.NaN
        assertFileRefused(
            safetensors("item_features", "F32", listOf(n, 1), f32(nan)), 1,
            "tensor \"item_features\" must be finite. Found NaN at flat position 5."
        )
        assertFileRefused(ByteArray(4), 1, "too short for a safetensors header")
    }
}
