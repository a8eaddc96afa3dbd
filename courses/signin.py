"""Sign-in pages beyond Django's own: a password reset that is rate-limited per address and per e-mail (and says
nothing about whether an account exists), and a new password that lifts every sign-in block on the account.

Both follow ``courses.identities.password_sign_in_allowed``: with local passwords off for students, a student's
address gets no reset mail (the page answers as it always does) and a reset link of hers opens nothing; judges and
staff keep theirs."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.shortcuts import redirect

from courses.identities import password_sign_in_allowed
from courses.ratelimit import (
    PASSWORD_RESET_ADDRESS_LIMIT,
    PASSWORD_RESET_EMAIL_LIMIT,
    clear_sign_in_failures,
    client_address,
    retry_text,
    too_many,
    window,
)


class ResetForm(PasswordResetForm):
    def get_users(self, email):
        return (user for user in super().get_users(email) if password_sign_in_allowed(user))


class PasswordResetRequest(auth_views.PasswordResetView):
    form_class = ResetForm

    def post(self, request, *args, **kwargs):
        per_address = window(
            "reset-address", client_address(request), "PASSWORD_RESET_ADDRESS_LIMIT", PASSWORD_RESET_ADDRESS_LIMIT
        )
        if per_address.exceeded():
            wait = per_address.retry_after()
            return too_many(
                request,
                f"Too many password resets were asked from your network. Wait {retry_text(wait)} and try again.",
                wait,
                template=self.template_name,
                context=self.get_context_data(form=self.get_form()),
            )
        per_address.hit()
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        per_email = window(
            "reset-email",
            form.cleaned_data["email"].strip().lower(),
            "PASSWORD_RESET_EMAIL_LIMIT",
            PASSWORD_RESET_EMAIL_LIMIT,
        )
        # Past the limit no more mail goes out, and the page says what it always says: nobody can bomb an
        # inbox, and nobody learns from the answer whether the address has an account.
        if per_email.hit() > per_email.limit:
            return redirect(self.get_success_url())
        return super().form_valid(form)


class PasswordSet(auth_views.PasswordResetConfirmView):
    def get_user(self, uidb64):
        # A link made before local passwords were turned off for students is no longer valid for a student.
        user = super().get_user(uidb64)
        return user if user is not None and password_sign_in_allowed(user) else None

    def form_valid(self, form):
        response = super().form_valid(form)
        clear_sign_in_failures(form.user)
        return response
