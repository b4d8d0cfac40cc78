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
                        if let notice = model.notice {
                            Section { Text(notice).foregroundStyle(.red) }
                        }
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
                            Text("Tap a movie you like: your taste vector is rebuilt on this device from everything you liked, and the list refreshes.")
                        }
                        if !model.liked.isEmpty {
                            Section("Liked (tap to unlike)") {
                                ForEach(model.liked) { item in
                                    Button {
                                        Task { await model.unlike(item) }
                                    } label: {
                                        HStack {
                                            Text(item.title)
                                            Spacer()
                                            Image(systemName: "heart.fill")
                                        }
                                    }
                                    .disabled(model.busy)
                                }
                            }
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
