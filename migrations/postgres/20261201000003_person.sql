-- Each person's roles as Runboard last saw them from the provider (at sign-in, or with an
-- access token): a personal API token acts with these, capped at the roles it was issued
-- with, so that someone removed from a group loses that role in their tokens too.
CREATE TABLE person (
    subject TEXT PRIMARY KEY NOT NULL,
    name    TEXT NOT NULL,
    -- ["viewer","operator"]
    roles   TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);
