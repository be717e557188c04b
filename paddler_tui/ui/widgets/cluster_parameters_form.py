"""An editor for every inference parameter, each with its help or its error beside it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.ui.parameter_form import (
    FIELDS_BY_NAME,
    PARAMETER_FIELDS,
    FormValue,
    ParameterField,
    form_values,
)


class ClusterParametersForm(Grid):
    """Rows of name, editor and help; a field with a wrong value shows why instead of help."""

    DEFAULT_CSS: ClassVar[str] = """
    ClusterParametersForm {
        grid-size: 3;
        grid-columns: 21 16 1fr;
        grid-rows: auto;
        grid-gutter: 0 1;
        height: auto;
        .help { color: $text-muted; }
        .help.-invalid { color: $error; }
        Checkbox { width: 16; }
    }
    """

    def compose(self) -> ComposeResult:
        for parameter in PARAMETER_FIELDS:
            yield Label(parameter.label)
            yield _editor(parameter)
            yield Static(Text(parameter.help), id=f"help-{parameter.name}", classes="help")

    def set_parameters(self, parameters: InferenceParameters) -> None:
        for name, value in form_values(parameters).items():
            self.set_value(name, value)
        self.show_errors({})

    def set_value(self, name: str, value: FormValue) -> None:
        editor = self.query_one(f"#param-{name}")
        if isinstance(editor, Checkbox):
            editor.value = bool(value)
        elif isinstance(editor, Select | Input):
            editor.value = str(value)

    def values(self) -> dict[str, FormValue]:
        values: dict[str, FormValue] = {}
        for parameter in PARAMETER_FIELDS:
            editor = self.query_one(f"#param-{parameter.name}")
            if isinstance(editor, Checkbox):
                values[parameter.name] = editor.value
            elif isinstance(editor, Select):
                values[parameter.name] = "" if editor.is_blank() else str(editor.value)
            elif isinstance(editor, Input):
                values[parameter.name] = editor.value
        return values

    def show_errors(self, errors: dict[str, str]) -> None:
        for parameter in PARAMETER_FIELDS:
            help_text = self.query_one(f"#help-{parameter.name}", Static)
            error = errors.get(parameter.name)
            help_text.set_class(error is not None, "-invalid")
            help_text.update(Text(error if error is not None else parameter.help))

    def editor(self, name: str) -> Widget:
        assert name in FIELDS_BY_NAME
        return self.query_one(f"#param-{name}")


def _editor(parameter: ParameterField) -> Widget:
    editor_id = f"param-{parameter.name}"
    if parameter.kind == "bool":
        return Checkbox("on", compact=True, id=editor_id)
    if parameter.kind == "choice":
        return Select(
            [(choice, choice) for choice in parameter.choices],
            allow_blank=False,
            compact=True,
            id=editor_id,
        )
    return Input(compact=True, id=editor_id)
