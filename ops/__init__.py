"""Operations commands of lead-caller (the `lead-caller` CLI)."""
