import PrivRecKit
import SwiftUI

struct PrivacyView: View {
    @EnvironmentObject private var model: AppModel

    var body: some View {
        NavigationStack {
            List {
                if let m = model.manifest {
                    Section("Training privacy") {
                        if let eps = m.epsilon {
                            LabeledContent("ε (user-level)", value: String(format: "%.3g", eps))
                            if let delta = m.delta { LabeledContent("δ", value: String(format: "%.1e", delta)) }
                            LabeledContent("Ledger entries", value: "\(m.ledger.count)")
                        } else if m.privacyMode == "off" {
                            Text("Trained federated without differential privacy: ε = ∞ (no guarantee).")
                        } else {
                            Text("Trained centrally: this model makes no differential-privacy claim.")
                        }
                        LabeledContent("Mode", value: m.privacyMode)
                    }
                    Section("On this device") {
                        Text("Your likes and taste vector never leave this device. They are stored encrypted (AES-GCM) with a key kept in the Keychain.")
                        if let loss = model.lastLoss { LabeledContent("Loss of the last reconstruction", value: String(format: "%.4f", loss)) }
                        if let notice = model.notice { Text(notice).foregroundStyle(.red) }
                        Button("Forget my likes", role: .destructive) { Task { await model.forget() } }
                    }
                    Section("Model") {
                        LabeledContent("Version", value: m.modelVersion)
                        LabeledContent("Precision", value: m.precision)
                        LabeledContent("Items", value: "\(m.numItems)")
                    }
                    Section("Golden self-test") {
                        ForEach(model.selfTest) { r in
                            HStack {
                                Image(systemName: r.passed ? "checkmark.circle" : "xmark.octagon")
                                Text("\(r.signature) #\(r.id)")
                                Spacer()
                                Text(String(format: "%.1e ≤ %.0e", r.maxError, r.tolerance)).font(.caption.monospaced())
                            }
                        }
                    }
                }
            }
            .navigationTitle("Privacy")
        }
    }
}
