package dev.privrec.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Test

class PrivacyTest {
    @Suppress("UNCHECKED_CAST")
    private fun privacy(json: String): Privacy {
        val raw = Json.parse(json) as Map<String, Any?>
        val ledger = (raw["ledger"] as? List<Map<String, Any?>>) ?: emptyList()
        return Privacy(raw["mode"] as? String ?: "unknown", ledger, raw)
    }

    @Test
    fun centralTrainingMakesNoClaim() {
        val p = privacy("""{"mode": "none", "ledger": [], "epsilon": null, "delta": null}""")
        assertNull(p.epsilon())
        assertNull(p.delta())
        assertEquals("Trained centrally: no differential-privacy claim.", p.summary())
    }

    @Test
    fun federatedDpReportsTheLedgerSummary() {
        // The shape sdk/privacy/ledger.py writes into the manifest.
        val p = privacy("""{"mode": "central", "ledger": [{"mechanism": "poisson_subsampled_gaussian", "noise_multiplier": 1.0, "sample_rate": 0.01, "rounds": 1000, "clip_norm": 1.0, "adaptive_clipping": null}], "epsilon": 2.1014, "delta": 1e-05, "epsilon_rdp": 2.1014, "epsilon_pld": 1.8282, "rounds": 1000, "secure_noise": true, "warnings": []}""")
        assertEquals(2.1014, p.epsilon()!!, 0.0)
        assertEquals(1e-5, p.delta()!!, 0.0)
        assertEquals(1, p.ledger.size)
        assertEquals("Trained with user-level differential privacy: ε = 2.10, δ = 1.0e-05 (central).", p.summary())
    }

    @Test
    fun modeOffMeansInfiniteEpsilon() {
        val p = privacy("""{"mode": "off", "ledger": [{"mechanism": "none", "rounds": 5}], "epsilon": null, "delta": 1e-5}""")
        assertNull(p.epsilon())
        assertEquals("Trained federated without differential privacy: ε = ∞ (no guarantee).", p.summary())
    }
}
