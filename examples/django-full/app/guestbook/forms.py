from django import forms


class SignForm(forms.Form):
    message = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 3}))
