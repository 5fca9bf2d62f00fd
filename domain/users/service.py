"""The users application: one method per command on user profiles."""

from typing import ClassVar
from uuid import UUID

from domain.ports import Claim
from domain.service import ClaimChanges, CommandContext, CommandResult, CommandService, Decision
from domain.users.profile import UserProfile
from domain.values import email_claim_key

EMAIL = "email"


def email_claim(email: str, owner_id: UUID) -> Claim:
    return Claim(EMAIL, email_claim_key(email), owner_id)


class UsersService(CommandService):
    name: ClassVar[str] = "users"  # type: ignore[misc]

    def register(self, ctx: CommandContext, name: str, email: str) -> CommandResult:
        def decide() -> Decision:
            profile = UserProfile.register(name, email)
            return Decision(profile, ClaimChanges(take=[email_claim(profile.email, profile.id)]))

        return self.create(ctx, decide)

    def rename(self, ctx: CommandContext, user_id: UUID, name: str) -> CommandResult:
        return self.update(ctx, UserProfile, user_id, lambda p: p.rename(name))

    def change_email(self, ctx: CommandContext, user_id: UUID, email: str) -> CommandResult:
        def change(profile: UserProfile) -> ClaimChanges:
            previous = profile.email
            profile.change_email(email)
            if email_claim_key(previous) == email_claim_key(profile.email):
                return ClaimChanges()
            return ClaimChanges(
                take=[email_claim(profile.email, profile.id)],
                release=[email_claim(previous, profile.id)],
            )

        return self.update(ctx, UserProfile, user_id, change)

    def add_hobby(self, ctx: CommandContext, user_id: UUID, hobby: str) -> CommandResult:
        return self.update(ctx, UserProfile, user_id, lambda p: p.add_hobby(hobby))

    def remove_hobby(self, ctx: CommandContext, user_id: UUID, hobby: str) -> CommandResult:
        return self.update(ctx, UserProfile, user_id, lambda p: p.remove_hobby(hobby))

    def change_location(
        self, ctx: CommandContext, user_id: UUID, city: str, country: str
    ) -> CommandResult:
        return self.update(ctx, UserProfile, user_id, lambda p: p.change_location(city, country))

    def deactivate(self, ctx: CommandContext, user_id: UUID) -> CommandResult:
        return self.update(ctx, UserProfile, user_id, lambda p: p.deactivate())

    def reactivate(self, ctx: CommandContext, user_id: UUID) -> CommandResult:
        return self.update(ctx, UserProfile, user_id, lambda p: p.reactivate())

    def profile(self, user_id: UUID) -> UserProfile:
        return self.load(UserProfile, user_id)
