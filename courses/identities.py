"""Which platform account an institution sign-in opens, and who may still sign in with a local password.

An institution account is known by its issuer and ``sub``, never by its e-mail: addresses are reassigned and some
providers let their users type any address. So the first sign-in of a ``sub`` links it to a roster account by
e-mail only when the provider vouches for the address (``email_verified``), and never to an account that could be
worth taking over: one already linked to another ``sub``, a TA's or an instructor's, or a superuser's. Those keep
their local passwords and are linked by an operator if at all.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from courses.models import STAFF_ROLES, InstitutionIdentity, Membership, Role

NOT_LINKABLE = (
    "Your institution account could not be matched to an account on this site. Ask your course staff to check the "
    "e-mail address on the roster, or sign in with your password if you have one."
)


class InstitutionSignInRefused(Exception):
    """The institution confirmed who she is, but no account of the platform may be opened for her."""


def _holds_staff_role(user) -> bool:
    return user.is_superuser or user.is_staff or Membership.objects.filter(user=user, role__in=STAFF_ROLES).exists()


def account_for_institution_sign_in(*, issuer: str, subject: str, email: str, email_verified: bool):
    """The account this (issuer, sub) signs in as, linking or creating it on its first sign-in.

    Raises InstitutionSignInRefused with a message for her when the address belongs to an account that may not be
    linked (or to several accounts): a new account with the same address would leave two people one e-mail.
    """
    identity = InstitutionIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    if identity is not None:
        return identity.user
    email = (email or "").strip()
    User = get_user_model()
    try:
        with transaction.atomic():
            same_address = list(User.objects.select_for_update().filter(email__iexact=email)) if email else []
            if not same_address:
                user = User.objects.create_user(
                    username=f"{subject}@{issuer}"[:150], email=email if email_verified else ""
                )
                user.set_unusable_password()
                user.save(update_fields=["password"])
            elif (
                len(same_address) == 1
                and email_verified is True
                and not _holds_staff_role(same_address[0])
                and not InstitutionIdentity.objects.filter(user=same_address[0]).exists()
            ):
                user = same_address[0]
            else:
                raise InstitutionSignInRefused(NOT_LINKABLE)
            InstitutionIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    except IntegrityError:
        # Two first sign-ins of one account at once: the other linked it; one of a second ``sub`` found it taken.
        raise InstitutionSignInRefused(NOT_LINKABLE)
    return user


def password_sign_in_allowed(user) -> bool:
    """Local passwords stay for judges and staff; for students only while LOCAL_PASSWORDS_FOR_STUDENTS is on."""
    if getattr(settings, "LOCAL_PASSWORDS_FOR_STUDENTS", True):
        return True
    if user.is_superuser or user.is_staff:
        return True
    roles = set(Membership.objects.filter(user=user).values_list("role", flat=True))
    return roles != {Role.STUDENT}
