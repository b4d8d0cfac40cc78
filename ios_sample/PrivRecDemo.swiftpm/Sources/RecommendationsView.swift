import PrivRecKit
import SwiftUI

struct RecommendationsView: View {
    @EnvironmentObject private var model: AppModel

    var body: some View {
        NavigationStack {
            Group {
                if let error = model.error {
                    ContentUnavailableCompat(title: "Bundle not usable", message: error)
                } else {
                    List {
                        Section {
                            ForEach(model.recommendations) { rec in
                                Button {
                                    Task { await model.like(rec) }
                                } label: {
                                    HStack {
                                        Text(rec.title)
                                        Spacer()
                                        Image(systemName: "heart")
                                    }
                                }
                                .disabled(model.busy)
                            }
                        } footer: {
                            Text("Tap a movie you like: the model fine-tunes on this device and the list refreshes.")
                        }
                        if !model.liked.isEmpty {
                            Section("Liked") { ForEach(model.liked, id: \.self) { Text($0) } }
                        }
                    }
                    .overlay { if model.busy { ProgressView() } }
                }
            }
            .navigationTitle("For you")
        }
    }
}

/// `ContentUnavailableView` is iOS 17+; this app targets iOS 16.
struct ContentUnavailableCompat: View {
    let title: String
    let message: String

    var body: some View {
        VStack(spacing: 12) {
            Image(systemName: "exclamationmark.triangle").font(.largeTitle)
            Text(title).font(.headline)
            Text(message).font(.footnote).multilineTextAlignment(.center).foregroundStyle(.secondary)
        }
        .padding()
    }
}
