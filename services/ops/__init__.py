"""Operations on executions: auth, retries, audit."""
