"""Invitations into a project group: sent by a member, accepted or declined by the classmate, withdrawn by the group."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from courses.models import Membership, Role
from projects.models import Group, GroupMember, Invitation
from projects.services.checks import (
    lock_member,
    require_group_option_free,
    require_group_room,
    require_in_group,
    require_membership_changes_open,
    require_no_group,
)


@transaction.atomic
def invite(*, group: Group, inviter: Membership, email: str) -> Invitation:
    """A member invites a classmate, named by her e-mail, from the course's students."""
    group = Group.objects.select_for_update().get(pk=group.pk)
    require_in_group(group, inviter)
    require_membership_changes_open(group)
    email = email.strip()
    invitee = (
        Membership.objects.filter(course=group.course, user__email__iexact=email, role=Role.STUDENT)
        .select_related("user")
        .first()
    )
    if invitee is None:
        raise ValidationError(
            f"No student with the e-mail {email} is in this course. Check the address she uses for the course."
        )
    if invitee.pk == inviter.pk:
        raise ValidationError("You are already in this group.")
    require_no_group(invitee, who=invitee.user.get_full_name() or invitee.user.email)
    if group.invitations.filter(invitee=invitee, status=Invitation.Status.PENDING).exists():
        raise ValidationError(f"{invitee.user.email} already has an invitation to this group.")
    require_group_room(group, adding=1, count_pending=True)
    return Invitation.objects.create(group=group, invitee=invitee, invited_by=inviter)


@transaction.atomic
def accept_invitation(*, invitation: Invitation, member: Membership) -> GroupMember:
    if invitation.invitee_id != member.pk:
        raise ValidationError("This invitation is for someone else.")
    member = lock_member(member)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != Invitation.Status.PENDING:
        raise ValidationError(f"This invitation is no longer open (it was {invitation.get_status_display().lower()}).")
    group = Group.objects.select_for_update().get(pk=invitation.group_id)
    require_membership_changes_open(group)
    require_no_group(member)
    require_group_option_free(member)
    require_group_room(group, adding=1, count_pending=False)
    link = GroupMember.objects.create(group=group, member=member)
    invitation.status = Invitation.Status.ACCEPTED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at"])
    # She can only be in one group: her other open invitations lapse.
    Invitation.objects.filter(invitee=member, status=Invitation.Status.PENDING).update(
        status=Invitation.Status.CANCELLED, responded_at=timezone.now()
    )
    return link


@transaction.atomic
def decline_invitation(*, invitation: Invitation, member: Membership) -> Invitation:
    if invitation.invitee_id != member.pk:
        raise ValidationError("This invitation is for someone else.")
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != Invitation.Status.PENDING:
        raise ValidationError("This invitation is no longer open.")
    invitation.status = Invitation.Status.DECLINED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at"])
    return invitation


@transaction.atomic
def cancel_invitation(*, invitation: Invitation, member: Membership) -> Invitation:
    require_in_group(invitation.group, member)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != Invitation.Status.PENDING:
        raise ValidationError("This invitation is no longer open.")
    invitation.status = Invitation.Status.CANCELLED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at"])
    return invitation
