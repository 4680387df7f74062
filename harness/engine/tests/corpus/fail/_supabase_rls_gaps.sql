-- Two user-scoped tables, each with one gap in its row-level security: `diary` has a
-- select policy `USING (true)`, and `drafts` has no row-level security at all (it still has
-- Supabase's grants, so every API role reads it).
CREATE TABLE diary (
    id bigserial PRIMARY KEY,
    owner_id uuid NOT NULL DEFAULT auth.uid(),
    body text NOT NULL
);
ALTER TABLE diary ENABLE ROW LEVEL SECURITY;
CREATE POLICY diary_own ON diary FOR ALL TO authenticated
    USING (owner_id = auth.uid()) WITH CHECK (owner_id = auth.uid());
CREATE POLICY diary_everyone ON diary FOR SELECT TO authenticated USING (true);
CREATE TABLE drafts (
    id bigserial PRIMARY KEY,
    owner_id uuid NOT NULL,
    body text NOT NULL
);
CREATE TABLE tidy (
    id bigserial PRIMARY KEY,
    owner_id uuid NOT NULL DEFAULT auth.uid(),
    body text NOT NULL
);
ALTER TABLE tidy ENABLE ROW LEVEL SECURITY;
CREATE POLICY tidy_own ON tidy FOR ALL TO authenticated
    USING (owner_id = auth.uid()) WITH CHECK (owner_id = auth.uid());
