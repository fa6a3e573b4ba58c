from cloud.db import make_engine


def test_bare_postgresql_url_uses_the_driver_we_ship() -> None:
    engine = make_engine("postgresql://user@db.invalid:5432/linewatch")
    assert engine.dialect.driver == "psycopg2"
    engine.dispose()


def test_explicit_driver_is_kept() -> None:
    engine = make_engine("postgresql+psycopg2://user@db.invalid:5432/linewatch")
    assert engine.dialect.driver == "psycopg2"
    engine.dispose()
