-- MLflow gets its own database: it and Linewatch both keep an Alembic
-- `alembic_version` table, which must not be shared. Runs on the first start only.
CREATE DATABASE mlflow OWNER linewatch;
