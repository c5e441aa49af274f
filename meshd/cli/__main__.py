from meshd.cli.main import main

main()
