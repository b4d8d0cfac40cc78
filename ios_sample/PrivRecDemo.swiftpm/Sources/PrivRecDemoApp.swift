import PrivRecKit
import SwiftUI

@main
struct PrivRecDemoApp: App {
    @StateObject private var model = AppModel()

    var body: some Scene {
        WindowGroup {
            TabView {
                RecommendationsView().tabItem { Label("For you", systemImage: "film") }
                PrivacyView().tabItem { Label("Privacy", systemImage: "lock.shield") }
            }
            .environmentObject(model)
            .task { await model.start() }
        }
    }
}
