"""The Probe page: send one request to a served model and read its answer.

A request editor prefilled with the model's sample body for the chosen route, Send (off the GUI
thread), the answer pretty-printed with status and latency, a history that replays, and Copy as
curl. The URL follows the Serve page's deployment; any other URL works too, with the API key a
server may check.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from studio.core.errors import StudioError
from studio.core.model.artifact import ModelArtifact
from studio.core.serve.bundle import served_name
from studio.core.serve.client import ModelClient, Reply, curl_command
from studio.ui.pages.page import Page
from studio.ui.widgets.json_view import pretty_json
from studio.ui.widgets.page_parts import ServerFields
from studio.ui.workers import TaskRunner

GET_ROUTES = ("/health", "/ready", "/metrics", "/v2", "/v2/models/{name}")
NAMES_SHOWN = 5
QUOTED_LIST = re.compile(r"'[^']*'(?:, '[^']*')+")
TAKES_LIST = re.compile(r"\(the model takes: ([^()]*)\)")
POST_ROUTES = ("/predict", "/predict/batch", "/v2/models/{name}/infer")


@dataclass(frozen=True)
class SentRequest:
    url: str
    method: str
    route: str
    body: Any
    status: int | None
    latency_ms: float | None
    at: str

    def title(self) -> str:
        outcome = f"{self.status} in {self.latency_ms:.1f} ms" if self.status else "no answer"
        return f"{self.at}  {self.method} {self.route}  → {outcome}"


def compact_reason(message: str, shown: int = NAMES_SHOWN) -> str:
    """A server's reason with its long lists of feature names cut to the first few and a count
    (a model of 300 features would otherwise fill the page with names)."""
    def quoted(match: re.Match) -> str:
        names = match.group(0).split(", ")
        if len(names) <= shown:
            return match.group(0)
        return ", ".join(names[:shown]) + f" and {len(names) - shown} more"

    def takes(match: re.Match) -> str:
        names = match.group(1).split(", ")
        if len(names) <= shown:
            return match.group(0)
        return f"(the model takes {len(names)} features: {', '.join(names[:shown])}, …)"

    return TAKES_LIST.sub(takes, QUOTED_LIST.sub(quoted, message))


def _fixed_font(widget: QPlainTextEdit) -> QPlainTextEdit:
    widget.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    return widget


class ProbePage(Page):
    answered = Signal(object)
    """The Reply to a sent request."""

    def __init__(self, runner: TaskRunner, parent: QWidget | None = None):
        super().__init__(runner, "Probe", parent=parent)
        self.history: list[SentRequest] = []

        self.server = ServerFields()
        self.url = self.server.url
        self.route = QComboBox()
        self.route.setEditable(True)
        self.route.currentTextChanged.connect(self._route_changed)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send)
        self.curl_button = QPushButton("Copy as curl")
        self.curl_button.clicked.connect(self.copy_curl)
        request_row = QHBoxLayout()
        request_row.addWidget(self.server, 3)
        request_row.addWidget(self.route, 1)
        request_row.addWidget(self.send_button)
        request_row.addWidget(self.curl_button)

        self.editor = _fixed_font(QPlainTextEdit())
        self.editor.setPlaceholderText("Request body (JSON); GET routes need none.")
        self.status = QLabel("No request sent yet.")
        self.status.setObjectName("sectionTitle")
        self.reason = QLabel()
        self.reason.setObjectName("probeReason")
        self.reason.setWordWrap(True)
        self.reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.reason.hide()
        self.response = _fixed_font(QPlainTextEdit())
        self.response.setReadOnly(True)
        self.history_list = QListWidget()
        self.history_list.itemDoubleClicked.connect(self._replay_item)
        self.history_list.setToolTip("Double-click to send a request again")

        answer = QWidget()
        answer_layout = QVBoxLayout(answer)
        answer_layout.setContentsMargins(0, 0, 0, 0)
        # An error belongs with the answer it replaces: above the page it would push the request
        # row and the editor down under the user's pointer.
        answer_layout.addWidget(self.error_banner)
        answer_layout.addWidget(self.status)
        answer_layout.addWidget(self.reason)
        answer_layout.addWidget(self.response, 1)
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(self.editor)
        body.addWidget(answer)
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(body)
        history = QWidget()
        history_layout = QVBoxLayout(history)
        history_layout.setContentsMargins(0, 0, 0, 0)
        history_layout.addWidget(QLabel("History (double-click to replay)"))
        history_layout.addWidget(self.history_list)
        main.addWidget(history)
        main.setSizes([420, 160])

        self.body.addLayout(request_row)
        self.body.addWidget(main, 1)
        self.set_source(None)

    # --- state ---------------------------------------------------------------------------------

    def set_source(self, artifact: ModelArtifact | None) -> None:
        super().set_source(artifact)
        name = served_name(artifact) if artifact else "{name}"
        self.route.blockSignals(True)
        self.route.clear()
        for route in POST_ROUTES + GET_ROUTES:
            self.route.addItem(route.replace("{name}", name))
        self.route.blockSignals(False)
        self._route_changed(self.route.currentText())

    def set_url(self, url: str) -> None:
        self.url.setText(url)

    def method(self) -> str:
        """Prediction routes take a body (POST); health, metadata and metrics are read (GET)."""
        return "POST" if self.route.currentText().strip().endswith(
            ("/predict", "/predict/batch", "/infer")) else "GET"

    def _route_changed(self, route: str) -> None:
        samples = self.source.schema.samples if self.source else None
        sample = None
        if samples is not None:
            sample = {"/predict": samples.rest, "/predict/batch": samples.rest_batch}.get(
                route, samples.v2 if route.endswith("/infer") else None)
        self.editor.setPlainText(pretty_json(sample) if sample is not None else "")

    # --- sending -------------------------------------------------------------------------------

    def _request(self) -> tuple[str, str, str, Any]:
        url = self.server.required_url("send to")
        method, route = self.method(), self.route.currentText().strip() or "/"
        text = self.editor.toPlainText().strip()
        if method == "GET" or not text:
            return url, method, route, None
        try:
            return url, method, route, json.loads(text)
        except json.JSONDecodeError as exc:
            raise StudioError(f"The request body is not valid JSON: {exc.msg} at line "
                              f"{exc.lineno}, column {exc.colno}.",
                              "Fix the body and send again; nothing was sent.") from exc

    def _clear_answer(self, status: str) -> None:
        self.status.setText(status)
        self.reason.clear()
        self.reason.hide()
        self.response.clear()

    def send(self) -> None:
        request = self.checked(self._request)
        if request is None:  # the previous answer must not read as this request's
            self._clear_answer("Nothing was sent.")
            return
        url, method, route, body = request
        api_key = self.server.key()
        self.error_banner.hide()
        self.send_button.setEnabled(False)
        self._clear_answer(f"Sending {method} {route}…")

        def call(progress) -> Reply:
            with ModelClient(url, api_key=api_key, timeout=30) as client:
                return client.request(method, route, body)

        self.runner.submit(call, name=f"{method} {route}",
                           on_result=lambda reply: self._answered(url, method, route, body, reply),
                           on_error=lambda error: self._failed(url, method, route, body, error))

    def _remember(self, request: SentRequest) -> None:
        self.history.insert(0, request)
        item = QListWidgetItem(request.title())
        item.setData(Qt.ItemDataRole.UserRole, request)
        self.history_list.insertItem(0, item)

    def _answered(self, url: str, method: str, route: str, body: Any, reply: Reply) -> None:
        self.send_button.setEnabled(True)  # ready for the next request before `answered` is heard
        verdict = "OK" if reply.ok else ("client error" if reply.status < 500 else "server error")
        self.status.setText(f"HTTP {reply.status} {verdict} in {reply.latency_ms:.1f} ms")
        reason = reply.body.get("error") if reply.is_json and isinstance(reply.body, dict) else None
        if not reply.ok and isinstance(reason, str):
            self.reason.setText(compact_reason(reason))
            self.reason.setToolTip(reason)
            self.reason.show()
        self.response.setPlainText(pretty_json(reply.body) if reply.is_json else reply.body)
        self._remember(SentRequest(url, method, route, body, reply.status, reply.latency_ms,
                                   time.strftime("%H:%M:%S")))
        self.answered.emit(reply)

    def _failed(self, url: str, method: str, route: str, body: Any, error: StudioError) -> None:
        self.send_button.setEnabled(True)
        self._clear_answer("No answer")
        self.error_banner.show_error(error)
        self._remember(SentRequest(url, method, route, body, None, None, time.strftime("%H:%M:%S")))

    def _replay_item(self, item: QListWidgetItem) -> None:
        self.replay(item.data(Qt.ItemDataRole.UserRole))

    def replay(self, request: SentRequest) -> None:
        self.url.setText(request.url)
        self.route.setCurrentText(request.route)
        self.editor.setPlainText(pretty_json(request.body) if request.body is not None else "")
        self.send()

    def copy_curl(self) -> None:
        request = self.checked(self._request)
        if request is not None:
            QGuiApplication.clipboard().setText(curl_command(*request,
                                                             api_key=self.server.key()))
