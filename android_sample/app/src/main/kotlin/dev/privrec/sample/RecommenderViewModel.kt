package dev.privrec.sample

import android.app.Application
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import dev.privrec.core.Bundle
import dev.privrec.core.BundleException
import dev.privrec.core.CaseResult
import dev.privrec.core.Interaction
import dev.privrec.core.InteractionLog
import dev.privrec.core.SelfTest
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.ExperimentalCoroutinesApi
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import java.io.File
import java.security.GeneralSecurityException

/** One row of the list: model row, title from the bundle's item map, score. */
data class Recommendation(val item: Int, val title: String, val score: Float)

/** What the screens show. */
data class UiState(
    val loading: Boolean = true,
    val error: String? = null,
    val recommendations: List<Recommendation> = emptyList(),
    val liked: List<String> = emptyList(),
    val backend: String = "",
    val selfTest: List<CaseResult> = emptyList(),
    val modelVersion: String = "",
    val privacySummary: String = "",
    val epsilon: Double? = null,
    val lastLoss: Double? = null
)

/**
 * Loads and verifies the bundle, runs the golden self-test on the backend that will serve (LiteRT when the
 * bundle has `model.tflite` and it passes; the plain-Kotlin math otherwise), and handles likes:
 * like → store (encrypted) → `finetune` over the catalog with the liked items as labels → new top-K
 * without the liked items. Everything runs on one background thread; nothing leaves the device.
 */
@OptIn(ExperimentalCoroutinesApi::class)
class RecommenderViewModel(app: Application) : AndroidViewModel(app) {
    private val worker = Dispatchers.Default.limitedParallelism(1)
    private val store = EncryptedInteractionStore(File(app.noBackupFilesDir, "interactions.bin"))
    private lateinit var bundle: Bundle
    private lateinit var signatures: SelfTest.Signatures
    private var liteRt: LiteRtSignatures? = null
    private lateinit var log: InteractionLog

    private val _state = MutableStateFlow(UiState())
    val state: StateFlow<UiState> = _state

    init {
        viewModelScope.launch {
            try {
                withContext(worker) { start() }
            } catch (e: BundleException) {
                _state.value = UiState(loading = false, error = "Bundle refused: ${e.message}")
            } catch (e: java.io.FileNotFoundException) {
                _state.value = UiState(loading = false, error = "No bundle in assets/bundle/: run `privrec export` and copy it there (README).")
            } catch (e: Exception) {
                _state.value = UiState(loading = false, error = "Could not start: $e")
            }
        }
    }

    private fun start() {
        bundle = BundleInstaller.install(getApplication())
        val m = bundle.manifest
        val kotlinMath = SelfTest.KotlinSignatures(bundle.recommender, m.topK, m.finetune.steps)
        val lite = LiteRtSignatures.open(bundle)
        val liteResults = lite?.let { bundle.selfTest(it) }
        val useLite = lite != null && liteResults!!.all { it.passed }
        if (!useLite) lite?.close()
        liteRt = if (useLite) lite else null
        signatures = if (useLite) lite!! else kotlinMath
        val results = liteResults ?: bundle.selfTest(kotlinMath)
        // Start over when the log is unreadable (altered file, key invalidated) or from another model
        // version (its user vector and item rows belong to that model): never guess.
        val saved = try {
            store.read()
        } catch (e: GeneralSecurityException) {
            null
        } catch (e: BundleException) {
            null
        }
        log = saved?.takeIf { it.modelVersion == m.modelVersion && it.user.size == m.dim }
            ?: InteractionLog.empty(m.modelVersion, m.dim)
        _state.value = UiState(
            loading = false,
            backend = if (useLite) "LiteRT (model.tflite)" else if (lite != null) "Kotlin math (LiteRT failed its self-test)" else "Kotlin math (no model.tflite)",
            selfTest = results,
            modelVersion = m.modelVersion,
            privacySummary = m.privacy.summary(),
            epsilon = m.privacy.epsilon()
        )
        refresh()
    }

    /** Top-K without seen items, through the `recommend` signature (mask -inf on seen items). */
    private fun refresh() {
        val m = bundle.manifest
        val mask = FloatArray(m.numItems)
        for (i in log.seen()) mask[i] = Float.NEGATIVE_INFINITY
        val top = signatures.recommend(log.user, mask)
        val rows = top.ids.indices
            .filter { top.scores[it] != Float.NEGATIVE_INFINITY } // fewer eligible items than K
            .map { Recommendation(top.ids[it], m.title(top.ids[it]), top.scores[it]) }
        _state.value = _state.value.copy(recommendations = rows, liked = log.interactions.map { m.title(it.item) })
    }

    fun like(item: Int) {
        viewModelScope.launch(worker) {
            val m = bundle.manifest
            if (item in log.seen()) return@launch // a double tap queued behind the first like
            log = log.with(Interaction(item, 1f, System.currentTimeMillis()))
            // Reconstruction over the whole catalog (DESIGN §4): labels are the indicator of liked items.
            val ids = IntArray(m.numItems) { it }
            val labels = FloatArray(m.numItems)
            for (i in log.interactions) labels[i.item] += i.label
            val out = signatures.finetune(log.user, ids, labels, m.finetune.lr.toFloat(), m.finetune.l2.toFloat())
            log = log.withUser(out.user)
            store.write(log)
            _state.value = _state.value.copy(lastLoss = out.loss)
            refresh()
        }
    }

    fun forgetMe() {
        viewModelScope.launch(worker) {
            store.erase()
            log = InteractionLog.empty(bundle.manifest.modelVersion, bundle.manifest.dim)
            _state.value = _state.value.copy(lastLoss = null)
            refresh()
        }
    }

    override fun onCleared() {
        liteRt?.close()
    }
}
