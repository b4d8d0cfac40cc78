package dev.privrec.sample

import android.app.Application
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import dev.privrec.core.Bundle
import dev.privrec.core.BundleException
import dev.privrec.core.CaseResult
import dev.privrec.core.Golden
import dev.privrec.core.Interaction
import dev.privrec.core.InteractionLog
import dev.privrec.core.Reconstruction
import dev.privrec.core.SelfTest
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.ExperimentalCoroutinesApi
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.io.File
import java.io.FileNotFoundException
import java.io.IOException
import java.security.GeneralSecurityException
import java.security.ProviderException

/** One row of the list: the app's item id, title from the bundle's item map, score. */
data class Recommendation(val item: String, val title: String, val score: Float)

/** One liked item (the app's item id), oldest first: tap it to unlike. */
data class LikedItem(val item: String, val title: String)

/** What the screens show. */
data class UiState(
    val loading: Boolean = true,
    /**
     * The app cannot serve at all (no bundle, no pinned key, a refused bundle: unsigned, signed by another
     * key, tampered): shown instead of the screens.
     */
    val error: String? = null,
    /** The last like, unlike or refresh failed (storage, Keystore or the model): shown above the list. */
    val notice: String? = null,
    val recommendations: List<Recommendation> = emptyList(),
    val liked: List<LikedItem> = emptyList(),
    val backend: String = "",
    val selfTest: List<CaseResult> = emptyList(),
    val modelVersion: String = "",
    val privacySummary: String = "",
    val epsilon: Double? = null,
    val lastLoss: Double? = null
)

/** The signatures that serve, how the Privacy screen names them, and the self-test that chose them. */
private class Backend(val signatures: SelfTest.Signatures, val description: String, val selfTest: List<CaseResult>) {
    fun close() = (signatures as? LiteRtSignatures)?.close()
}

/**
 * Loads and verifies the bundle (its `manifest.sig` against the key pinned at build time, then every
 * file), runs the golden self-test on the backend that will serve (LiteRT when the bundle has
 * `model.tflite` and it passes every case; the core's Kotlin math otherwise), and keeps the
 * user vector equal to the reconstruction recipe over the stored history: a like or an unlike edits the
 * history, then [Reconstruction] rebuilds the vector from zeros (labels from the whole history with the
 * manifest's recency half-life, `calls` finetune calls), the log is sealed in the store, and `recommend`
 * refreshes the list without the liked items. Everything runs on one background thread; nothing leaves
 * the device. Storage, Keystore and backend errors become [UiState.notice], never a crash.
 */
@OptIn(ExperimentalCoroutinesApi::class)
class RecommenderViewModel(app: Application) : AndroidViewModel(app) {
    private val worker = Dispatchers.Default.limitedParallelism(1)
    private val store = EncryptedInteractionStore(File(app.noBackupFilesDir, "interactions.bin"))
    private var bundle: Bundle? = null
    private var backend: Backend? = null
    private lateinit var log: InteractionLog

    private val _state = MutableStateFlow(UiState())
    val state: StateFlow<UiState> = _state

    init {
        viewModelScope.launch {
            try {
                withContext(worker) { start() }
            } catch (e: BundleException) {
                // Unsigned, signed by another key, changed after signing, corrupt or malformed: nothing served.
                _state.value = UiState(loading = false, error = "Bundle refused: ${e.message}")
            } catch (e: PinnedKeyException) {
                _state.value = UiState(loading = false, error = "Bundle refused: ${e.message}")
            } catch (e: FileNotFoundException) {
                _state.value = UiState(loading = false, error = "No bundle in assets/bundle/: run `privrec export --sign-key ...` and copy it there (README).")
            } catch (e: IOException) {
                _state.value = UiState(loading = false, error = "Could not install the bundle: $e")
            } catch (e: RuntimeException) {
                // The screen's last line of defence: whatever stopped the start is shown, not a crash.
                _state.value = UiState(loading = false, error = "Could not start: $e")
            }
        }
    }

    private fun start() {
        val b = BundleInstaller.install(getApplication())
        val m = b.manifest
        val chosen = chooseBackend(b)
        // The log keeps item ids, so it outlives a catalog update: the new bundle maps it onto its own rows,
        // and items it no longer holds are left out (and stay stored). A log of the earlier format (model rows)
        // is converted only with the bundle it was written with (else refused). Start over when the log is unreadable
        // (altered file, Keystore key invalidated or unavailable): never guess.
        val saved = try {
            store.read(rowsBundle = m)
        } catch (e: GeneralSecurityException) {
            null
        } catch (e: ProviderException) {
            null
        } catch (e: IOException) {
            null
        } catch (e: BundleException) {
            null
        } catch (e: IllegalArgumentException) {
            null // a truncated file
        }
        val restored = saved?.forModel(m.modelVersion, m.dim) ?: InteractionLog.empty(m.modelVersion, m.dim)
        bundle = b
        backend = chosen
        log = restored
        _state.value = UiState(
            loading = false,
            backend = chosen.description,
            selfTest = chosen.selfTest,
            modelVersion = m.modelVersion,
            privacySummary = m.privacy.summary(),
            epsilon = m.privacy.epsilon()
        )
        // The stored vector is only a cache: rebuild it with this bundle's recipe, so a vector written by an
        // older app never serves.
        attempt("Could not rebuild your taste vector") { rebuild(restored) }?.let { (rebuilt, loss) ->
            log = rebuilt
            _state.value = _state.value.copy(lastLoss = loss)
        }
        refresh()
    }

    /**
     * LiteRT when `model.tflite` loads and passes every golden case; otherwise the core's Kotlin math, named
     * with the reason on the Privacy screen. The Kotlin math must pass the golden cases itself: a bundle whose
     * weights disagree with its own golden file is refused.
     */
    private fun chooseBackend(b: Bundle): Backend {
        val m = b.manifest
        var lite: LiteRtSignatures? = null
        val whyNotLiteRt = try {
            lite = LiteRtSignatures.open(b)
            val opened = lite
            if (opened == null) {
                "no model.tflite in the bundle"
            } else {
                val results = b.selfTest(opened)
                val failed = results.filter { !it.passed }
                if (failed.isEmpty()) return Backend(opened, "LiteRT (model.tflite)", results)
                "LiteRT failed ${failed.size} of ${results.size} golden cases; first: ${failed[0]}"
            }
        } catch (e: IllegalArgumentException) {
            "LiteRT could not run model.tflite: ${e.message}" // invalid model, or a signature refused its inputs
        } catch (e: IllegalStateException) {
            "LiteRT could not run model.tflite: ${e.message}"
        } catch (e: IOException) {
            "could not map model.tflite: ${e.message}"
        } catch (e: UnsatisfiedLinkError) {
            "the LiteRT native library is missing for this device: ${e.message}"
        }
        lite?.close()
        val kotlinMath = SelfTest.KotlinSignatures(b.recommender, m.topK, m.finetune.steps)
        val results = b.selfTest(kotlinMath)
        val failed = results.filter { !it.passed }
        if (failed.isNotEmpty()) {
            throw BundleException(Golden.FILE, "the Kotlin math fails ${failed.size} of ${results.size} cases (first: ${failed[0]}); re-export the bundle")
        }
        return Backend(kotlinMath, "Kotlin math ($whyNotLiteRt)", results)
    }

    /**
     * [log] with its user vector rebuilt by the recipe on the serving backend, and the last call's loss;
     * an empty history has the zero vector (no loss).
     */
    private fun rebuild(next: InteractionLog): Pair<InteractionLog, Double?> {
        val b = bundle!!
        // Items this bundle's catalog does not hold are left out (mapped.dropped); with none left: the zero vector.
        val (out, _) = Reconstruction.reconstruct(backend!!.signatures, b.manifest, next)
        if (out == null) return Pair(next.withUser(FloatArray(b.manifest.dim)), null)
        return Pair(next.withUser(out.user), out.loss)
    }

    /**
     * Runs [block]; a storage, Keystore or backend failure is shown as `"$what: reason"` and gives null.
     * LiteRT reports a failed run as [IllegalArgumentException] or [IllegalStateException]; the Keystore as
     * a [GeneralSecurityException] (a key invalidated by a lock-screen change included) or a [ProviderException].
     */
    private fun <T> attempt(what: String, block: () -> T): T? {
        val reason = try {
            return block()
        } catch (e: GeneralSecurityException) {
            "the Keystore refused (${e.javaClass.simpleName}: ${e.message}). \"Forget my likes\" starts over with a new key."
        } catch (e: ProviderException) {
            "the Keystore failed (${e.message})"
        } catch (e: IOException) {
            "storage failed (${e.message})"
        } catch (e: IllegalArgumentException) {
            e.message ?: e.toString()
        } catch (e: IllegalStateException) {
            e.message ?: e.toString()
        }
        _state.value = _state.value.copy(notice = "$what: $reason")
        return null
    }

    /** Top-K without seen items, through the `recommend` signature (mask -inf on seen items). */
    private fun refresh() {
        val m = bundle!!.manifest
        val mask = FloatArray(m.numItems)
        for (i in log.seen(m.itemMap)) mask[i] = Float.NEGATIVE_INFINITY
        val top = attempt("Could not refresh recommendations") { backend!!.signatures.recommend(log.user, mask) } ?: return
        val rows = top.ids.indices
            // Fewer eligible items than K: excluded ones fill the tail at -inf, or at -Float.MAX_VALUE where the
            // interpreter's ADD saturates (tflite-runtime 2.14 does), so both are dropped.
            .filter { top.scores[it] > -Float.MAX_VALUE }
            .map { Recommendation(m.itemMap.id(top.ids[it]), m.title(top.ids[it]), top.scores[it]) }
        // Liked items the catalog no longer holds are still listed (by id), so they can be unliked.
        val liked = log.interactions.map { i -> LikedItem(i.itemId, m.itemMap.row(i.itemId)?.let { m.title(it) } ?: i.itemId) }
        _state.value = _state.value.copy(recommendations = rows, liked = liked)
    }

    /**
     * Applies [edit] to the history (null: nothing to do), rebuilds the vector, seals the log in the store,
     * and only then shows it: after a failure the stored and the shown state are both the previous one.
     */
    private fun change(what: String, edit: (InteractionLog) -> InteractionLog?) {
        viewModelScope.launch(worker) {
            if (backend == null) return@launch // the bundle never loaded; the screen says why
            val next = edit(log) ?: return@launch
            val (rebuilt, loss) = attempt(what) { rebuild(next).also { store.write(it.first) } } ?: return@launch
            log = rebuilt
            _state.value = _state.value.copy(lastLoss = loss, notice = null)
            refresh()
        }
    }

    /** Appends [item] (the app's item id) to the history as the latest interaction and rebuilds the vector. */
    fun like(item: String) = change("Could not save your like") { current ->
        // Already liked: a double tap queued behind the first like.
        if (item in current.seenIds()) null else current.with(Interaction(item, 1f, System.currentTimeMillis()))
    }

    /** Removes every interaction with [item] from the history and rebuilds the vector. */
    fun unlike(item: String) = change("Could not remove your like") { current ->
        if (item in current.seenIds()) current.without(item) else null
    }

    /** Deletes the stored log and its Keystore key, and starts over from the zero vector. */
    fun forgetMe() {
        viewModelScope.launch(worker) {
            val b = bundle ?: return@launch
            attempt("Could not erase your likes") { store.erase() } ?: return@launch
            log = InteractionLog.empty(b.manifest.modelVersion, b.manifest.dim)
            _state.value = _state.value.copy(lastLoss = null, notice = null)
            refresh()
        }
    }

    override fun onCleared() {
        backend?.close()
    }
}
