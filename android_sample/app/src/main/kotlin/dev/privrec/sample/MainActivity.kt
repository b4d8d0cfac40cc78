package dev.privrec.sample

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.setContent
import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.CircularProgressIndicator
import androidx.compose.material3.HorizontalDivider
import androidx.compose.material3.ListItem
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.NavigationBar
import androidx.compose.material3.NavigationBarItem
import androidx.compose.material3.Scaffold
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.saveable.rememberSaveable
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import androidx.lifecycle.viewmodel.compose.viewModel

class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent { MaterialTheme { PrivRecApp() } }
    }
}

@Composable
fun PrivRecApp(model: RecommenderViewModel = viewModel()) {
    val state by model.state.collectAsStateWithLifecycle()
    var tab by rememberSaveable { mutableStateOf(0) }
    Scaffold(bottomBar = {
        NavigationBar {
            NavigationBarItem(selected = tab == 0, onClick = { tab = 0 }, icon = {}, label = { Text("For you") })
            NavigationBarItem(selected = tab == 1, onClick = { tab = 1 }, icon = {}, label = { Text("Privacy") })
        }
    }) { padding ->
        val modifier = Modifier.padding(padding).fillMaxSize()
        when {
            state.loading -> Column(modifier.padding(24.dp)) { CircularProgressIndicator() }
            state.error != null -> Text(state.error!!, modifier.padding(24.dp), color = MaterialTheme.colorScheme.error)
            tab == 0 -> RecommendationsScreen(state, model::like, model::unlike, modifier)
            else -> PrivacyScreen(state, model::forgetMe, modifier)
        }
    }
}

@Composable
fun RecommendationsScreen(state: UiState, onLike: (String) -> Unit, onUnlike: (String) -> Unit, modifier: Modifier) {
    LazyColumn(modifier) {
        state.notice?.let { notice ->
            item { Text(notice, Modifier.padding(16.dp), color = MaterialTheme.colorScheme.error) }
        }
        item {
            Text(
                "Tap a movie you like: your taste vector is rebuilt on this phone from everything you liked, and the list refreshes.",
                Modifier.padding(16.dp), style = MaterialTheme.typography.bodyMedium
            )
        }
        items(state.recommendations, key = { it.item }) { rec ->
            Column {
                ListItem(
                    headlineContent = { Text(rec.title) },
                    supportingContent = { Text("score %.3f".format(rec.score)) },
                    trailingContent = { Text("♡") },
                    modifier = Modifier.clickable { onLike(rec.item) }
                )
                HorizontalDivider()
            }
        }
        if (state.liked.isNotEmpty()) {
            item { Text("Liked (tap to unlike)", Modifier.padding(16.dp), style = MaterialTheme.typography.titleMedium) }
            items(state.liked, key = { "liked-${it.item}" }) { liked ->
                ListItem(
                    headlineContent = { Text(liked.title) },
                    trailingContent = { Text("♥") },
                    modifier = Modifier.clickable { onUnlike(liked.item) }
                )
            }
        }
    }
}

@Composable
fun PrivacyScreen(state: UiState, onForget: () -> Unit, modifier: Modifier) {
    LazyColumn(modifier.padding(16.dp)) {
        item {
            // One item holds several texts: stack them (a lazy item would otherwise overlay its children).
            Column {
                Text("Privacy", style = MaterialTheme.typography.headlineSmall)
                state.notice?.let { Text(it, Modifier.padding(vertical = 8.dp), color = MaterialTheme.colorScheme.error) }
                Text(state.privacySummary, Modifier.padding(vertical = 8.dp))
                Text("Your likes and taste vector stay on this phone, encrypted with an Android Keystore AES-GCM key. Nothing is sent anywhere.")
                Text("Model ${state.modelVersion} · runs on ${state.backend}", Modifier.padding(vertical = 8.dp))
                state.lastLoss?.let { Text("Loss of the last reconstruction: %.4f".format(it)) }
                Text("Golden self-test", style = MaterialTheme.typography.titleMedium, modifier = Modifier.padding(top = 16.dp))
            }
        }
        items(state.selfTest) { r ->
            Text("${if (r.passed) "✓" else "✗"} ${r.case.signature} #${r.case.index}: max error %.2g (≤ %.0e)".format(r.maxError, r.case.tolerance))
        }
        item { Button(onClick = onForget, modifier = Modifier.padding(top = 16.dp)) { Text("Forget my likes") } }
    }
}
