"""The staff's form for what a lab's entry needs: its parts, its deadline, and the sizes and types of its files."""

from django import forms

from labs.entries.models import MB, EntryKit, Part

KNOWN_TYPES = {"song_types": {"wav", "mp3", "ogg", "flac"}, "plot_types": {"png", "jpeg"}}


class EntryKitForm(forms.ModelForm):
    parts = forms.MultipleChoiceField(
        choices=Part.choices, required=False, widget=forms.CheckboxSelectMultiple, label="An entry needs"
    )
    max_notebook_mb = forms.IntegerField(min_value=1, max_value=200, label="Notebook, at most (MB)")
    max_report_mb = forms.IntegerField(min_value=1, max_value=100, label="PDF report, at most (MB)")
    max_song_mb = forms.IntegerField(min_value=1, max_value=200, label="Song recording, at most (MB)")
    max_plot_mb = forms.IntegerField(min_value=1, max_value=50, label="Bar plot image, at most (MB)")

    class Meta:
        model = EntryKit
        fields = ["parts", "deadline", "max_text_chars", "song_types", "plot_types"]
        labels = {"deadline": "Entry deadline", "max_text_chars": "Description and discussion, at most (characters)"}

    def __init__(self, *args, course, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["deadline"].queryset = course.deadlines.order_by("due_at")
        self.fields["deadline"].empty_label = "the lab's own deadline"
        self.fields["deadline"].label_from_instance = lambda deadline: deadline.title
        for part in ("notebook", "report", "song", "plot"):
            self.fields[f"max_{part}_mb"].initial = getattr(self.instance, f"max_{part}_bytes") // MB

    def clean(self):
        data = super().clean()
        for name, known in KNOWN_TYPES.items():
            given = [t.strip().lower() for t in (data.get(name) or "").split(",") if t.strip()]
            unknown = sorted(set(given) - known)
            if unknown:
                self.add_error(name, f"Unknown formats {', '.join(unknown)}; choose among {', '.join(sorted(known))}.")
            elif not given:
                self.add_error(name, "Name at least one format.")
            else:
                data[name] = ",".join(dict.fromkeys(given))
        return data

    def save(self, commit: bool = True) -> EntryKit:
        kit = super().save(commit=False)
        kit.parts = list(dict.fromkeys(self.cleaned_data["parts"]))
        for part in ("notebook", "report", "song", "plot"):
            setattr(kit, f"max_{part}_bytes", self.cleaned_data[f"max_{part}_mb"] * MB)
        if commit:
            kit.save()
        return kit
